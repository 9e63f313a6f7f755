"""What decision analytics cost on the store: 10,000 decisions, rollup vs a scan.

    MONGODB_URL=mongodb://127.0.0.1:27018/ uv run python -m bench.analytics_cost [--decisions N]

Seeds N ended approvals (real `Approval` objects: requests decided by several reviewers,
some expired) over 30 days into a fresh database through the service's own code
(`Analytics.record` + `flush`, the documents the service writes), then times, as the
median of 5 runs each: the report per window, the expected-wait refresh, the what-if,
and for comparison the same report computed from one document per decision found
by a filter (a scan on FerretDB: what the rollup avoids). Drops the database at the end.
"""

import argparse
import asyncio
import os
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from hitl_approval.adapters.analytics_store import AnalyticsStore
from hitl_approval.domain.analytics import Fact, FatigueRule, GroupBy, report, rows_of
from hitl_approval.domain.model import Approval, Verb
from hitl_approval.service_layer.analytics import Analytics
from hitl_contracts import ApprovalRequested, Channel, RequestContext, RiskLevel
from hitl_contracts.rules import CandidatePolicy
from pymongo import AsyncMongoClient

AGENTS = {"banking": ["transfer", "deposit"], "files": ["delete_files"], "crm": ["send_email"]}
REVIEWERS = ["ann", "bob", "carol", "dave", "erin"]
DAYS = 30


def decision(rng: random.Random, now: datetime) -> Approval:
    agent = rng.choice(list(AGENTS))
    tool = rng.choice(AGENTS[agent])
    requested = now - timedelta(seconds=rng.uniform(3600, DAYS * 86400))
    request = ApprovalRequested(
        correlation_id=str(uuid.uuid4()),
        run_id=str(uuid.uuid4()),
        tool_call_id=f"call_{uuid.uuid4().hex[:8]}",
        agent=agent,
        tool=tool,
        arguments={"amount": round(rng.uniform(1, 5000), 2)},
        reason="bench",
        risk_level=rng.choice(list(RiskLevel)),
        context=RequestContext(user_request="bench"),
        requested_at=requested,
        expires_at=requested + timedelta(minutes=30),
    )
    approval = Approval.requested(request)
    roll = rng.random()
    if roll < 0.05:
        return approval.apply(approval.expire(request.expires_at))
    at = requested + timedelta(seconds=rng.expovariate(1 / 120))
    at = min(at, request.expires_at - timedelta(seconds=1))
    reviewer = rng.choice(REVIEWERS)
    if roll < 0.15:
        entry = approval.decide(
            Verb.REJECT,
            reviewer=reviewer,
            channel=Channel.API,
            now=at,
            comment=rng.choice(["not a known payee", "too large", "duplicate"]),
        )
    elif roll < 0.2:
        entry = approval.decide(
            Verb.MODIFY, reviewer=reviewer, channel=Channel.API, now=at, arguments={"amount": 1}
        )
    else:
        entry = approval.decide(Verb.APPROVE, reviewer=reviewer, channel=Channel.API, now=at)
    return approval.apply(entry)


async def timed(job: Callable[[], Awaitable[Any]], runs: int = 5) -> float:
    """Median wall milliseconds of `runs` calls."""
    took = []
    for _ in range(runs):
        start = time.perf_counter()
        await job()
        took.append((time.perf_counter() - start) * 1000)
    return statistics.median(took)


async def main(decisions: int) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        os.environ.get("MONGODB_URL", "mongodb://127.0.0.1:27018/"), tz_aware=True
    )
    name = f"hitl_bench_analytics_{uuid.uuid4().hex[:8]}"
    db = client[name]
    now = datetime.now(UTC)
    store = AnalyticsStore(db)

    async def nobody() -> set[str]:
        return set()

    async def nothing(_: str) -> Approval | None:
        return None

    analytics = Analytics(store, writer="bench", clock=lambda: now, load=nothing, alive=nobody)
    try:
        await store.ensure_indexes()
        rng = random.Random(17)
        approvals = [decision(rng, now) for _ in range(decisions)]
        start = time.perf_counter()
        for approval in approvals:
            analytics.record(approval)
        await analytics.flush()
        seeded = time.perf_counter() - start
        cells = await db["decision_rollup"].count_documents({})
        print(f"seeded {decisions} decisions in {seeded:.1f}s: {cells} rollup cells")
        # The same documents as facts one by one, for the scan the rollup avoids.
        await db["facts_scan"].insert_many(
            [
                {
                    "_id": a.correlation_id,
                    "decided_at": a.decision.decided_at,
                    "p": f.packed(),
                    "e": f.packed_extra(),
                }
                for a in approvals
                if a.decision is not None
                for f in [Fact.of(a)]
            ]
        )

        # The live path: one flush of one decision into the current hour's cell.
        live = decision(rng, now)
        hook = time.perf_counter()
        analytics.record(live)
        hook_us = (time.perf_counter() - hook) * 1e6
        flush_ms = await timed(analytics.flush, runs=1)
        print(f"decide-path hook (record): {hook_us:.0f} us; one flush: {flush_ms:.1f} ms")

        for hours in (24, 24 * 7, 24 * DAYS):
            since = now - timedelta(hours=hours)
            for by in (GroupBy.AGENT, GroupBy.REVIEWER):

                async def one(since: datetime = since, by: GroupBy = by) -> dict[str, Any]:
                    return await analytics.report(group_by=by, since=since, until=now)

                ms = await timed(one)
                print(f"report by {by.value:8} over {hours:4}h (rollup): {ms:7.1f} ms")

        async def scan() -> None:
            since = now - timedelta(days=DAYS + 1)
            found = db["facts_scan"].find({"decided_at": {"$gte": since, "$lt": now}})
            facts = [Fact.unpack(doc["p"], doc["e"]) async for doc in found]
            report(rows_of(facts), GroupBy.AGENT, FatigueRule())

        print(
            f"report by agent    over {24 * DAYS:4}h (one document per decision, scanned): {await timed(scan):7.1f} ms"
        )

        async def refresh() -> None:
            analytics._waits = None
            await analytics.expected_wait("banking", "transfer")

        print(f"expected-wait refresh (7 days, rollup): {await timed(refresh):7.1f} ms")
        candidate = CandidatePolicy.model_validate(
            {
                "tools": {
                    "transfer": {
                        "require_approval_when": [{"field": "amount", "op": "gt", "value": 250}]
                    }
                }
            }
        )
        ms = await timed(
            lambda: analytics.what_if(
                candidate, since=now - timedelta(days=DAYS + 1), until=now, review_cap_seconds=300
            )
        )
        print(f"what-if over {DAYS} days (rollup): {ms:7.1f} ms")
    finally:
        await client.drop_database(name)
        await client.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--decisions", type=int, default=10_000)
    asyncio.run(main(parser.parse_args().decisions))
