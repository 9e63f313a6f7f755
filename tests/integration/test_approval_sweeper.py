"""Several replicas sweeping at once on the real store: each approval expires once."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta

import pytest
from hitl_approval.adapters.repository import ApprovalRepository
from hitl_approval.domain.model import Approval, EntryType, Status
from hitl_approval.service_layer.services import ApprovalService, OutboxEvent
from hitl_shared.contracts import ApprovalDecided, ApprovalRequested, RequestContext
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from tests.support.infra import Infra, provide

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, tzinfo=UTC)
APPROVALS = 15
REPLICAS = 3


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


def request(**overrides: object) -> ApprovalRequested:
    fields: dict[str, object] = {
        "correlation_id": f"c-{uuid.uuid4()}",
        "run_id": "r",
        "agent": "banking",
        "tool": "transfer",
        "arguments": {"amount": 500},
        "reason": "big",
        "context": RequestContext(user_request="u"),
        "requested_at": T0,
        "expires_at": T0 + timedelta(seconds=1),
    }
    return ApprovalRequested.model_validate({**fields, **overrides})


@pytest.mark.parametrize("on_timeout", ["reject", "escalate"])
async def test_replicas_sweeping_together_expire_or_escalate_each_approval_once(
    db: AsyncDatabase[dict[str, object]], on_timeout: str
) -> None:
    published: list[OutboxEvent] = []

    async def publish(event: OutboxEvent) -> None:
        published.append(event)

    replicas = [
        ApprovalService(
            ApprovalRepository(db, instance=f"replica-{i}"),
            publish,
            clock=lambda: T0 + timedelta(seconds=5),
        )
        for i in range(REPLICAS)
    ]
    requests = [request(on_timeout=on_timeout) for _ in range(APPROVALS)]
    for r in requests:
        await replicas[0].repo.add(Approval.requested(r))

    handled = await asyncio.gather(*(replica.expire_due() for replica in replicas))

    assert sum(handled) == APPROVALS, "each approval handled by exactly one replica"
    assert sorted(e.correlation_id for e in published) == sorted(r.correlation_id for r in requests)
    for r in requests:
        approval = await replicas[0].get(r.correlation_id)
        if on_timeout == "reject":
            assert approval.status is Status.EXPIRED
            assert approval.version == 1
        else:
            assert approval.status is Status.PENDING
            assert [e.type for e in approval.entries] == [EntryType.REQUESTED, EntryType.ESCALATED]
    kinds = {type(e) for e in published}
    assert kinds == ({ApprovalDecided} if on_timeout == "reject" else {ApprovalRequested})
