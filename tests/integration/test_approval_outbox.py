"""The outbox relay on the real store: at least once, but never behind a live publisher."""

import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from hitl_approval.adapters.repository import ApprovalRepository
from hitl_approval.domain.model import Approval, Verb
from hitl_approval.service_layer.services import ApprovalService, OutboxEvent
from hitl_shared.contracts import ApprovalRequested, Channel, RequestContext
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from tests.support.infra import Infra, provide

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def infra() -> Iterator[Infra]:
    with provide() as endpoints:
        yield endpoints


@pytest.fixture
async def db(infra: Infra) -> AsyncIterator[AsyncDatabase[dict[str, object]]]:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(infra.mongodb_url, tz_aware=True)
    name = f"hitl_it_{uuid.uuid4().hex[:8]}"
    yield client[name]
    await client.drop_database(name)
    await client.close()


class Replica:
    """One approval-service process: its repository identity, clock and publisher."""

    def __init__(self, db: AsyncDatabase[dict[str, object]], name: str) -> None:
        self.now = T0
        self.published: list[OutboxEvent] = []

        async def publish(event: OutboxEvent) -> None:
            self.published.append(event)

        self.service = ApprovalService(
            ApprovalRepository(db, instance=name),
            publish,
            clock=lambda: self.now,
            outbox_grace=timedelta(seconds=2),
            replica_timeout=timedelta(seconds=5),
        )

    async def stored_unpublished_decision(self) -> str:
        """A decision this replica stored but has not published (as if still publishing)."""
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
        approval = Approval.requested(request)
        await self.service.repo.add(approval)
        entry = approval.decide(Verb.APPROVE, reviewer="ann", channel=Channel.API, now=self.now)
        assert await self.service.repo.append(approval, entry)
        return request.correlation_id


async def test_a_live_replicas_slow_publish_is_not_duplicated_by_another(
    db: AsyncDatabase[dict[str, object]],
) -> None:
    a, b = Replica(db, "a"), Replica(db, "b")
    cid = await a.stored_unpublished_decision()
    a.service.outbox.inflight.add((cid, 1))  # a is still publishing it inline
    for replica in (a, b):
        replica.now = T0 + timedelta(seconds=4)  # older than the grace
        await replica.service.outbox.heartbeat()

    assert await b.service.outbox.relay() == 0, "a is alive: its decision is its own"
    assert await a.service.outbox.relay() == 0, "a is still publishing it inline"
    assert a.published == b.published == []

    a.service.outbox.inflight.clear()  # a's inline publish failed
    assert await a.service.outbox.relay() == 1
    assert [e.correlation_id for e in a.published] == [cid]
    assert await a.service.outbox.relay() == 0, "marked published: once"


async def test_a_dead_replicas_decision_is_relayed_by_a_live_one(
    db: AsyncDatabase[dict[str, object]],
) -> None:
    a, b = Replica(db, "a"), Replica(db, "b")
    cid = await a.stored_unpublished_decision()
    await a.service.outbox.heartbeat()  # a's last sign of life, then it is killed

    b.now = T0 + timedelta(seconds=3)
    await b.service.outbox.heartbeat()
    assert await b.service.outbox.relay() == 0, "a might still be alive"

    b.now = T0 + timedelta(seconds=6)
    assert await b.service.outbox.relay() == 1
    (event,) = b.published
    assert event.correlation_id == cid
    decided = await b.service.get(cid)
    assert decided.status.value == "approved"
