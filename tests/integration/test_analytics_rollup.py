"""The decision rollup on a real MongoDB-compatible store (FerretDB here): cells, slots,
and the repair after a replica crashed with decisions still in its queue."""

from datetime import UTC, datetime, timedelta
from typing import Any

from hitl_approval.adapters.analytics_store import AnalyticsStore, cell_id
from hitl_approval.adapters.repository import ApprovalRepository
from hitl_approval.domain.analytics import GroupBy
from hitl_approval.domain.model import Approval, Verb
from hitl_approval.service_layer.analytics import Analytics
from hitl_contracts import ApprovalRequested, Channel, RequestContext

NOW = datetime.now(UTC).replace(microsecond=0)


def ended(n: int, verb: Verb = Verb.APPROVE) -> Approval:
    at = NOW - timedelta(minutes=10)
    request = ApprovalRequested(
        correlation_id=f"c-{n}-{verb.value}",
        run_id=f"r-{n}",
        tool_call_id=f"call-{n}",
        agent="banking",
        tool="transfer",
        arguments={"amount": n},
        reason="r",
        context=RequestContext(user_request="u"),
        requested_at=at,
        expires_at=at + timedelta(hours=1),
    )
    approval = Approval.requested(request)
    entry = approval.decide(
        verb, reviewer="ann", channel=Channel.API, now=at + timedelta(seconds=n), comment="no"
    )
    return approval.apply(entry)


def analytics(store: AnalyticsStore, writer: str, repo: ApprovalRepository, **kw: Any) -> Analytics:
    async def nobody() -> set[str]:
        return set()

    return Analytics(store, writer=writer, clock=lambda: NOW, load=repo.get, alive=nobody, **kw)


async def test_cells_fill_slots_in_order_and_a_report_reads_them(db: Any) -> None:
    store, repo = AnalyticsStore(db), ApprovalRepository(db)
    one = analytics(store, "one", repo, cell_size=2)
    two = analytics(store, "two", repo, cell_size=2)
    for n in range(1, 4):
        one.record(ended(n))
    two.record(ended(4, Verb.REJECT))
    two.record(ended(4, Verb.REJECT))  # the same approval twice: counted once
    await one.flush()
    await two.flush()
    day = (NOW - timedelta(minutes=10)).date()
    writers = [
        (await db["decision_rollup"].find_one({"_id": cell_id(day, slot)}))["writer"]
        for slot in range(3)
    ]
    # Two writers share a day without a gap or a shared cell; a full cell takes a new slot.
    assert sorted(writers) == ["one", "one", "two"]
    figures = await one.report(group_by=GroupBy.TOOL, since=NOW - timedelta(hours=1), until=NOW)
    assert figures["overall"]["counts"]["approved"] == 3
    assert figures["overall"]["counts"]["rejected"] == 1
    facts = await one.facts(NOW - timedelta(hours=1), NOW)
    assert sorted(f.arguments["amount"] for f in facts) == [1, 2, 3, 4]


async def test_a_crashed_writers_queue_is_repaired_once(db: Any) -> None:
    store, repo = AnalyticsStore(db), ApprovalRepository(db)
    kept, lost = ended(1), ended(2)
    for approval in (kept, lost):
        await repo.add(Approval.from_entries(approval.entries[:1]))
        assert await repo.append(approval, approval.entries[1])
        await repo.project(approval)
    crashed = analytics(store, "crashed", repo)
    await crashed.start()
    crashed.record(kept)
    crashed.record(lost)
    await crashed.flush()
    # The crash: the second decision was committed, its fact never reached the store.
    decided = lost.decision
    assert decided is not None
    facts = await crashed.facts(NOW - timedelta(hours=1), NOW)
    await store.write_cell(
        decided.decided_at.date(),
        0,
        "crashed",
        [f for f in facts if f.correlation_id != lost.correlation_id],
    )
    assert len(await crashed.facts(NOW - timedelta(hours=1), NOW)) == 1
    first, second = analytics(store, "a", repo), analytics(store, "b", repo)
    assert await first.start() == 1
    assert await second.start() == 0, "the crashed writer was repaired and forgotten"
    figures = await second.report(group_by=GroupBy.AGENT, since=NOW - timedelta(hours=1), until=NOW)
    assert figures["overall"]["total"] == 2
    await first.stop()
    assert await store.known_writers() == {"b"}
