"""Expiry on the real store: replicas sweeping at once expire each approval once, and a
replica expires what it ingested from memory, without scanning."""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hitl_approval.adapters.repository import ApprovalRepository
from hitl_approval.bootstrap import build_service
from hitl_approval.domain.model import Approval, EntryType, Status, Verb
from hitl_approval.service_layer.outbox import OutboxEvent
from hitl_approval.service_layer.services import DecideCommand
from hitl_contracts import ApprovalDecided, ApprovalRequested, Channel
from pymongo.asynchronous.database import AsyncDatabase

from tests.factories import approval_request

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, tzinfo=UTC)
APPROVALS = 15
REPLICAS = 3


def request(**overrides: Any) -> ApprovalRequested:
    return approval_request(at=T0, timeout=timedelta(seconds=1), **overrides)


@pytest.mark.parametrize("on_timeout", ["reject", "escalate"])
async def test_replicas_sweeping_together_expire_or_escalate_each_approval_once(
    db: AsyncDatabase[dict[str, object]], on_timeout: str
) -> None:
    published: list[OutboxEvent] = []

    async def publish(event: OutboxEvent) -> None:
        published.append(event)

    replicas = [
        build_service(
            ApprovalRepository(db, instance=f"replica-{i}"),
            publish,
            clock=lambda: T0 + timedelta(seconds=5),
        )
        for i in range(REPLICAS)
    ]
    requests = [request(on_timeout=on_timeout) for _ in range(APPROVALS)]
    for r in requests:
        await replicas[0].repo.add(Approval.requested(r))

    handled = await asyncio.gather(*(replica.sweep_all() for replica in replicas))

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


async def test_a_replica_expires_what_it_ingested_without_scanning(
    db: AsyncDatabase[dict[str, object]], monkeypatch: pytest.MonkeyPatch
) -> None:
    published: list[OutboxEvent] = []

    async def publish(event: OutboxEvent) -> None:
        published.append(event)

    now = [T0]
    service = build_service(ApprovalRepository(db, instance="a"), publish, clock=lambda: now[0])

    async def no_scans(*_: object, **__: object) -> list[str]:
        raise AssertionError("scanned the store for due approvals")

    monkeypatch.setattr(service.repo, "due", no_scans)
    rejecting = request()
    escalating = request(on_timeout="escalate", escalation_seconds=10)
    decided = request()
    for r in (rejecting, escalating, decided):
        await service.ingest(r)
    await service.decide(DecideCommand(decided.correlation_id, Verb.APPROVE, "ann", Channel.API))

    assert await service.expire_due() == 0, "nothing is due yet"
    now[0] = T0 + timedelta(seconds=2)
    assert await service.expire_due() == 2, "the rejecting one expires, the other escalates"
    assert (await service.get(rejecting.correlation_id)).status is Status.EXPIRED
    assert (await service.get(escalating.correlation_id)).escalated
    assert await service.expire_due() == 0

    now[0] = T0 + timedelta(seconds=13)
    assert await service.expire_due() == 1, "the escalation's new deadline was remembered"
    assert (await service.get(escalating.correlation_id)).status is Status.EXPIRED
    assert (await service.get(decided.correlation_id)).status is Status.APPROVED
    assert len(service.deadlines) == 0
