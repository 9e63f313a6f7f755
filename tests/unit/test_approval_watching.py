"""The shared watch behind long-polls and event streams: one read per approval, not per waiter."""

import asyncio
from datetime import UTC, datetime, timedelta

from hitl_approval.domain.model import Approval, Verb
from hitl_approval.service_layer.watching import Watchers
from hitl_contracts import ApprovalRequested, Channel, RequestContext

NOW = datetime(2026, 12, 3, 6, 0, tzinfo=UTC)


def pending() -> Approval:
    return Approval.requested(
        ApprovalRequested(
            correlation_id="c-1",
            run_id="r-1",
            agent="a",
            tool="t",
            arguments={"x": 1},
            reason="r",
            context=RequestContext(user_request="u"),
            requested_at=NOW,
            expires_at=NOW + timedelta(hours=1),
        )
    )


def decided(approval: Approval) -> Approval:
    copy = Approval.from_entries(list(approval.entries))
    entry = copy.decide(Verb.APPROVE, reviewer="ann", channel=Channel.API, now=NOW)
    return copy.apply(entry)


class CountingStore:
    def __init__(self, approval: Approval) -> None:
        self.approval = approval
        self.reads = 0

    async def load(self, correlation_id: str) -> Approval | None:
        self.reads += 1
        await asyncio.sleep(0.01)
        return self.approval


async def test_many_waiters_one_read_and_one_wake() -> None:
    store = CountingStore(pending())
    watchers = Watchers(store.load)
    starts = await asyncio.gather(*(watchers.current("c-1") for _ in range(50)))
    assert store.reads == 1  # the crowd arriving at once shares one read
    assert all(s is not None and s.version == 0 for s in starts)

    async def wait() -> str:
        async with watchers.watching(store.approval) as watch:
            return (await watch.beyond(0, timeout=5)).status.value

    waiting = [asyncio.create_task(wait()) for _ in range(50)]
    await asyncio.sleep(0.05)
    assert watchers.waiting() == 50
    store.approval = decided(store.approval)
    for _ in range(10):
        watchers.poke("c-1")  # another replica's decision, announced ten times
    assert await asyncio.gather(*waiting) == ["approved"] * 50
    assert store.reads == 2  # one more read, for all fifty
    assert watchers.waiting() == 0
    assert watchers.watches == {}  # nothing kept once nobody waits


async def test_own_commit_wakes_without_a_read_and_timeouts_return_the_state() -> None:
    store = CountingStore(pending())
    watchers = Watchers(store.load)
    async with watchers.watching(store.approval) as watch:
        assert (await watch.beyond(0, timeout=0.05)).status.value == "pending"
        later = asyncio.create_task(watch.beyond(0, timeout=5))
        await asyncio.sleep(0.01)
        watchers.offer(decided(store.approval))
        assert (await later).status.value == "approved"
        watchers.offer(store.approval)  # an older state never replaces a newer one
        assert watch.approval.status.value == "approved"
    assert store.reads == 0
