"""The outbox relay on the real store: at least once, never behind a live publisher, and
no scans while all is well."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from hitl_approval.adapters.repository import ApprovalRepository
from hitl_approval.bootstrap import build_service
from hitl_approval.domain.model import Approval, Entry, Verb
from hitl_approval.service_layer.outbox import DOUBT_WINDOW, OutboxEvent
from hitl_approval.service_layer.services import DecideCommand
from hitl_contracts import ApprovalDecided, ApprovalRequested, Channel, RequestContext
from pymongo.asynchronous.database import AsyncDatabase

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, tzinfo=UTC)


class UnansweredRepository(ApprovalRepository):
    """The store, except that the next append may go unanswered (a timeout): `lands`
    says whether that write is stored all the same."""

    lands: bool | None = None

    async def append(self, approval: Approval, entry: Entry) -> bool:
        lands, self.lands = self.lands, None
        if lands is None:
            return await super().append(approval, entry)
        if lands:
            await super().append(approval, entry)
        raise TimeoutError("the store did not answer")


class Replica:
    """One approval-service process: its repository identity, clock and publisher."""

    def __init__(self, db: AsyncDatabase[dict[str, object]], name: str) -> None:
        self.now = T0
        self.published: list[OutboxEvent] = []
        self.broker_down = False

        async def publish(event: OutboxEvent) -> None:
            if self.broker_down:
                raise ConnectionError("broker unreachable")
            self.published.append(event)

        self.repo = UnansweredRepository(db, instance=name)
        self.service = build_service(
            self.repo,
            publish,
            clock=lambda: self.now,
            outbox_grace=timedelta(seconds=2),
            replica_timeout=timedelta(seconds=5),
        )

    async def pending(self) -> str:
        request = ApprovalRequested(
            correlation_id=f"c-{uuid.uuid4()}",
            run_id="r",
            agent="banking",
            tool="transfer",
            arguments={"amount": 500},
            reason="big",
            context=RequestContext(user_request="u"),
            requested_at=self.now,
            expires_at=self.now + timedelta(hours=1),
        )
        await self.service.ingest(request)
        return request.correlation_id

    async def approve(self, cid: str) -> None:
        await self.service.decide(DecideCommand(cid, Verb.APPROVE, "ann", Channel.API))

    async def stored_unpublished_decision(self) -> str:
        """A decision this replica stored but has not published (it died, or is slow)."""
        cid = await self.pending()
        approval = await self.service.get(cid)
        entry = approval.decide(Verb.APPROVE, reviewer="ann", channel=Channel.API, now=self.now)
        assert await self.service.repo.append(approval, entry)
        return cid

    def at(self, seconds: float) -> "Replica":
        self.now = T0 + timedelta(seconds=seconds)
        return self


async def test_a_failed_publish_is_retried_by_its_replica_and_nobody_else(
    db: AsyncDatabase[dict[str, object]],
) -> None:
    a, b = Replica(db, "a"), Replica(db, "b")
    await a.service.outbox.heartbeat()
    cid = await a.pending()
    a.broker_down = True
    await a.approve(cid)  # stored; the publish raised, the HTTP answer is still 200
    assert a.published == []

    await b.at(4).service.outbox.heartbeat()
    await a.at(4).service.outbox.heartbeat()
    assert await b.service.outbox.relay() == 0, "a is alive: its decision is its own"
    with pytest.raises(ConnectionError):
        await a.service.outbox.relay()  # the broker is still away: kept for later
    a.broker_down = False
    assert await a.service.outbox.relay() == 1
    assert [e.correlation_id for e in a.published] == [cid]
    assert await a.service.outbox.relay() == 0, "marked published: once"
    assert b.published == []


async def test_a_live_replicas_slow_publish_is_never_duplicated(
    db: AsyncDatabase[dict[str, object]],
) -> None:
    a, b = Replica(db, "a"), Replica(db, "b")
    cid = await a.stored_unpublished_decision()
    a.service.outbox.inflight.add((cid, 1))  # a is still publishing it inline
    for replica in (a.at(4), b.at(4)):
        await replica.service.outbox.heartbeat()
    assert await b.service.outbox.relay() == 0
    assert await a.service.outbox.relay() == 0
    assert a.published == b.published == []


async def test_a_dead_replicas_decision_is_relayed_by_a_live_one(
    db: AsyncDatabase[dict[str, object]],
) -> None:
    a, b = Replica(db, "a"), Replica(db, "b")
    cid = await a.stored_unpublished_decision()
    await a.service.outbox.heartbeat()  # a's last sign of life, then it is killed

    await b.at(3).service.outbox.heartbeat()
    assert await b.service.outbox.relay() == 0, "a might still be alive"

    b.at(6)
    assert await b.service.outbox.relay() == 1
    (event,) = b.published
    assert event.correlation_id == cid
    assert (await b.service.get(cid)).status.value == "approved"


async def test_the_relay_reads_no_collection_while_all_is_well(
    db: AsyncDatabase[dict[str, object]], monkeypatch: pytest.MonkeyPatch
) -> None:
    a = Replica(db, "a")
    await a.service.outbox.heartbeat()
    assert await a.service.outbox.relay() == 0  # the look at start-up

    async def no_scans(**_: object) -> list[object]:
        raise AssertionError("scanned approval_events in steady state")

    monkeypatch.setattr(a.service.repo, "unpublished", no_scans)
    cid = await a.pending()
    await a.approve(cid)
    for second in range(1, 4):
        await a.at(second).service.outbox.heartbeat()
        assert await a.service.outbox.relay() == 0
    assert [e.correlation_id for e in a.published] == [cid]


async def test_a_decision_stored_though_the_store_never_answered_is_published_by_the_relay(
    db: AsyncDatabase[dict[str, object]],
) -> None:
    a = Replica(db, "a")
    await a.service.outbox.heartbeat()
    cid = await a.pending()
    a.repo.lands = True
    with pytest.raises(TimeoutError):
        await a.approve(cid)  # the reviewer got a 503; the write landed all the same
    assert a.published == []
    assert await a.at(1).service.outbox.relay() == 1
    (decided,) = a.published
    assert isinstance(decided, ApprovalDecided)
    assert decided.correlation_id == cid
    assert not await a.repo.is_unpublished(cid, 1)
    assert (await a.service.get(cid)).status.value == "approved"
    assert await a.at(2).service.outbox.relay() == 0, "published once"


async def test_an_unanswered_write_that_never_lands_is_looked_for_a_while_then_dropped(
    db: AsyncDatabase[dict[str, object]],
) -> None:
    a = Replica(db, "a")
    await a.service.outbox.heartbeat()
    cid = await a.pending()
    a.repo.lands = False
    with pytest.raises(TimeoutError):
        await a.approve(cid)
    assert await a.at(1).service.outbox.relay() == 0
    assert a.service.outbox.doubtful, "still looked for"
    seconds = DOUBT_WINDOW.total_seconds() + 2
    await a.at(seconds).service.outbox.heartbeat()
    assert await a.service.outbox.relay() == 0
    assert not a.service.outbox.doubtful
    await a.approve(cid)  # the reviewer's retry: decided and published once
    assert [e.correlation_id for e in a.published] == [cid]
