"""Batch ingestion on the real store: each new request stored once, in one insert per
collection; duplicates (in the batch or already stored) and escalated copies create nothing."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hitl_approval.adapters.repository import ApprovalRepository
from hitl_approval.bootstrap import build_service
from hitl_approval.domain.model import Status, Verb
from hitl_approval.service_layer.outbox import OutboxEvent
from hitl_approval.service_layer.services import ApprovalService, DecideCommand
from hitl_contracts import ApprovalRequested, Channel
from pymongo.asynchronous.database import AsyncDatabase

from tests.factories import approval_request

pytestmark = pytest.mark.integration

T0 = datetime.now(UTC)


@pytest.fixture
async def service(db: AsyncDatabase[dict[str, object]]) -> ApprovalService:
    published: list[OutboxEvent] = []

    async def publish(event: OutboxEvent) -> None:
        published.append(event)

    repo = ApprovalRepository(db, instance="it")
    await repo.ensure_indexes()
    return build_service(repo, publish)


def request(**overrides: Any) -> ApprovalRequested:
    return approval_request(at=T0, timeout=timedelta(hours=1), **overrides)


async def test_a_batch_stores_each_new_request_once_and_duplicates_create_nothing(
    service: ApprovalService, db: AsyncDatabase[dict[str, object]]
) -> None:
    earlier = request()
    assert await service.ingest(earlier)
    new = [request() for _ in range(5)]
    batch = [new[0], earlier, new[1], new[1], *new[2:]]

    created = await service.ingest_many(batch)

    assert created == [True, False, True, False, True, True, True]
    for req in [earlier, *new]:
        approval = await service.get(req.correlation_id)
        assert approval.status is Status.PENDING
        assert approval.version == 0
    assert await db["approval_events"].count_documents({}) == 6
    assert await db["approvals"].count_documents({}) == 6
    assert await service.ingest_many(batch) == [False] * len(batch), "a redelivered batch"
    assert await db["approval_events"].count_documents({}) == 6
    assert sorted(service.deadlines.due(T0 + timedelta(hours=2))) == sorted(
        r.correlation_id for r in [earlier, *new]
    )


async def test_a_redelivered_batch_repairs_a_listing_row_a_crash_left_behind(
    service: ApprovalService, db: AsyncDatabase[dict[str, object]]
) -> None:
    req = request()
    assert await service.ingest_many([req]) == [True]
    await db["approvals"].delete_one({"_id": req.correlation_id})  # crashed before projecting

    assert await service.ingest_many([req, request()]) == [False, True]

    row = await db["approvals"].find_one({"_id": req.correlation_id})
    assert row is not None
    assert row["status"] == "pending"


async def test_an_escalated_copy_in_a_batch_leaves_a_decided_approval_as_it_is(
    service: ApprovalService, db: AsyncDatabase[dict[str, object]]
) -> None:
    req = request()
    assert await service.ingest_many([req]) == [True]
    await service.decide(
        DecideCommand(req.correlation_id, Verb.APPROVE, reviewer="ann", channel=Channel.API)
    )
    copy = req.model_copy(update={"escalated": True})

    assert await service.ingest_many([copy, request()]) == [False, True]

    approval = await service.get(req.correlation_id)
    assert approval.status is Status.APPROVED
    assert await db["approvals"].find_one({"_id": req.correlation_id}) is None, "not pending"
    row = await db["approvals_archive"].find_one({"_id": req.correlation_id})
    assert row is not None
    assert row["status"] == "approved"
    assert row["version"] == approval.version
