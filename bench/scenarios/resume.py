"""decision -> resume at a steady rate, on real banking runs paused for approval.

Runs are submitted through the agent's REST API (offline planner: "Transfer 500 to
alice" pauses on the transfer policy), so every decision resumes a real stored run.
Each decision answered 200 is timed from its HTTP response (and from its send) to the moment
the run's `resumed` RunEvent reaches this process from `agent.runs`; the agent's own
`occurred_at` gives a second reading on the same machine clock.
"""

import asyncio
import time
from collections import Counter
from typing import Any

import httpx

from bench.load import Decided, decide, paced
from bench.scenarios.common import reviewer, store_size, wait_listed
from bench.stats import by_window, summarize
from bench.tap import RunTap, tapping
from tests.support.infra import Infra
from tests.support.stack import Stack

WARMUP = 5
# Generous: a backlog drains slowly on FerretDB 1.x; what is still missing is reported.
RESUME_TIMEOUT_S = 60.0
PREP_CONCURRENCY = 8
# The agent starts runs one at a time; on FerretDB 1.x that can take seconds each.
PREPARE_TIMEOUT_S = 600.0


async def _prepare(stack: Stack, tap: RunTap, count: int) -> dict[str, str]:
    """Submit `count` runs; return correlation id -> run id once all are listed as pending."""
    gate = asyncio.Semaphore(PREP_CONCURRENCY)

    async def submit(agent: httpx.AsyncClient) -> tuple[str, str]:
        async with gate:
            response = await agent.post("/v1/runs", json={"input": "Transfer 500 to alice"})
            run_id = str(response.raise_for_status().json()["run_id"])
        paused = await tap.wait_for(run_id, "awaiting_approval", timeout=PREPARE_TIMEOUT_S)
        approvals = paused.detail.get("approvals")
        if not isinstance(approvals, list) or len(approvals) != 1:
            raise RuntimeError(f"expected one approval for run {run_id}: {paused.detail}")
        first = approvals[0]
        # A summary of the held call (or, from older agents, just its correlation id).
        return str(first["correlation_id"] if isinstance(first, dict) else first), run_id

    async with stack.agent() as agent:
        pairs = dict(await asyncio.gather(*(submit(agent) for _ in range(count))))
    async with reviewer(stack) as client:
        await wait_listed(client, set(pairs), timeout=PREPARE_TIMEOUT_S)
    return pairs


async def run(infra: Infra, stack: Stack, *, count: int, rate: float, verb: str) -> dict[str, Any]:
    async with tapping(infra.kafka_bootstrap_servers, stack.prefix + "agent.runs") as tap:
        t0 = time.perf_counter()
        runs = await _prepare(stack, tap, count + WARMUP)
        prepared_in = time.perf_counter() - t0
        ids = list(runs)
        samples: list[tuple[Decided, float | None, float | None]] = []

        async with reviewer(stack) as client:

            async def decide_and_wait(cid: str) -> tuple[Decided, float | None, float | None]:
                d = await decide(client, cid, verb)
                # After an error answer the outbox relay may still deliver the decision.
                try:
                    seen = await tap.wait_for(runs[cid], "resumed", timeout=RESUME_TIMEOUT_S)
                except TimeoutError:
                    return d, None, None
                return d, seen.received, seen.occurred_at

            for cid in ids[:WARMUP]:
                await decide_and_wait(cid)

            async def job(i: int) -> None:
                samples.append(await decide_and_wait(ids[WARMUP + i]))

            elapsed, late = await paced(count, rate, job)

        # Let the resumed runs finish (bounded), so the next scenario starts on a quiet store.
        deadline = time.monotonic() + RESUME_TIMEOUT_S
        completed = 0
        for run_id in runs.values():
            try:
                await tap.wait_for(
                    run_id, "completed", timeout=max(0.0, deadline - time.monotonic())
                )
                completed += 1
            except TimeoutError:
                pass

    samples.sort(key=lambda s: s[0].sent)
    statuses = Counter(str(d.status) for d, _, _ in samples)
    resumed = [(d, recv, occ) for d, recv, occ in samples if recv is not None and occ is not None]
    failed = [recv - d.answered for d, recv, _ in resumed if d.status != 200]
    ok = [(d, recv, occ) for d, recv, occ in resumed if d.status == 200]
    after_response = [recv - d.answered for d, recv, _ in ok]
    span = samples[-1][0].sent - samples[0][0].sent
    return {
        "decisions": count,
        "target_rate_per_s": rate,
        # Decisions sent per second (the rate the load actually had), and the whole span.
        "achieved_rate_per_s": round((count - 1) / max(span, 1e-9), 1),
        "decide_and_resume_all_s": round(elapsed, 1),
        "starts_late_over_5ms": late,
        "verb": verb,
        "statuses": dict(statuses),
        "error_response_to_resumed": summarize(failed),
        "prepare_runs_s": round(prepared_in, 1),
        "response_to_resumed": summarize(after_response),
        "not_resumed_within_s": {str(RESUME_TIMEOUT_S): len(samples) - len(resumed)},
        "send_to_resumed": summarize([recv - d.sent for d, recv, _ in ok]),
        "response_to_resumed_agent_clock": summarize(
            [occurred - d.answered_wall for d, _, occurred in ok]
        ),
        "decision_http": summarize([d.answered - d.sent for d, _, _ in samples]),
        "response_to_resumed_by_quarter": by_window(after_response),
        "runs_completed": completed,
        "store_after": await store_size(infra.mongodb_url, stack.database),
    }
