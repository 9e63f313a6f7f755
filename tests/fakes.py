"""In-memory fakes of the approval service's ports (`service_layer/ports.py`).

They keep the one property the service relies on: an append is atomic on
(approval, seq), so of two writers that read the same version exactly one appends.
`get` yields to the event loop, so concurrent use cases interleave as they would
against a real store, and `before_append` lets a test slip a rival write in between.
"""

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from hitl_approval.adapters.metrics import ApprovalMetrics
from hitl_approval.domain.history import Note
from hitl_approval.domain.model import Approval, Entry, Status
from hitl_approval.service_layer.outbox import Outbox, OutboxEvent
from hitl_approval.service_layer.ports import OutboxItem, StoredResponse
from hitl_approval.service_layer.services import ApprovalService
from hitl_contracts import NotificationRecorded


class FakeApprovalStore:
    def __init__(self, instance: str = "test") -> None:
        self.instance = instance
        self.streams: dict[str, list[Entry]] = {}
        self.rows: dict[str, Approval] = {}
        self.unpublished_entries: dict[tuple[str, int], str] = {}  # -> owner
        self.set_aside_reasons: dict[str, str] = {}
        # Runs once, right before the next append (a rival writer's turn).
        self.before_append: Callable[[], Awaitable[None]] | None = None

    async def add(self, approval: Approval) -> bool:
        created = approval.correlation_id not in self.streams
        if created:
            self.streams[approval.correlation_id] = [approval.entries[0]]
        await self.project(approval)
        return created

    async def add_many(self, approvals: list[Approval]) -> list[bool]:
        return [await self.add(approval) for approval in approvals]

    async def get(self, correlation_id: str) -> Approval | None:
        await asyncio.sleep(0)
        entries = self.streams.get(correlation_id)
        return Approval.from_entries(list(entries)) if entries else None

    async def append(self, approval: Approval, entry: Entry) -> bool:
        if self.before_append is not None:
            rival, self.before_append = self.before_append, None
            await rival()
        stream = self.streams[approval.correlation_id]
        if len(stream) != entry.seq:
            return False
        stream.append(entry)
        if entry.publish:
            self.unpublished_entries[(approval.correlation_id, entry.seq)] = self.instance
        return True

    async def project(self, approval: Approval) -> None:
        self.rows[approval.correlation_id] = approval

    async def due(self, now: datetime, *, limit: int = 200) -> list[str]:
        found = [
            cid
            for cid, row in self.rows.items()
            if row.status is Status.PENDING
            and row.expires_at <= now
            and cid not in self.set_aside_reasons
        ]
        return found[:limit]

    async def set_aside(self, correlation_id: str, reason: str) -> None:
        self.set_aside_reasons[correlation_id] = reason

    async def unpublished(self, *, before: datetime, limit: int = 200) -> list[OutboxItem]:
        items = [
            OutboxItem(cid, self.streams[cid][seq], owner)
            for (cid, seq), owner in self.unpublished_entries.items()
            if self.streams[cid][seq].at < before
        ]
        return items[:limit]

    async def is_unpublished(self, correlation_id: str, seq: int) -> bool:
        return (correlation_id, seq) in self.unpublished_entries

    async def mark_published(self, correlation_id: str, seq: int) -> None:
        self.unpublished_entries.pop((correlation_id, seq), None)

    async def mark_published_many(self, keys: list[tuple[str, int]]) -> None:
        for correlation_id, seq in keys:
            await self.mark_published(correlation_id, seq)


class FakeNotes:
    def __init__(self) -> None:
        self.notes: dict[str, Note] = {}

    async def record(self, event: NotificationRecorded) -> bool:
        key = str(event.event_id)
        if key in self.notes:
            return False
        self.notes[key] = Note(
            correlation_id=event.correlation_id,
            at=event.occurred_at,
            channel=event.channel,
            recipient=event.recipient,
            kind=event.kind.value,
            status=event.status.value,
            attempts=event.attempts,
            error=event.error,
            message_ref=event.message_ref,
        )
        return True

    async def of(self, correlation_id: str) -> list[Note]:
        found = [note for note in self.notes.values() if note.correlation_id == correlation_id]
        return sorted(found, key=lambda note: note.at)


class FakeInstances:
    def __init__(self) -> None:
        self.beats: dict[str, datetime] = {}

    async def beat(self, instance: str, now: datetime) -> None:
        self.beats[instance] = now

    async def alive(self, now: datetime, *, within: timedelta) -> set[str]:
        return {name for name, at in self.beats.items() if at >= now - within}

    async def dead(self, now: datetime, *, within: timedelta) -> set[str]:
        return {name for name, at in self.beats.items() if at < now - within}

    async def forget(self, instances: set[str]) -> None:
        for name in instances:
            self.beats.pop(name, None)


class FakeIdempotencyKeys:
    def __init__(self) -> None:
        self.kept: dict[tuple[str, str], StoredResponse] = {}

    async def get(self, reviewer: str, key: str) -> StoredResponse | None:
        return self.kept.get((reviewer, key))

    async def remember(
        self, reviewer: str, key: str, response: StoredResponse, *, now: datetime
    ) -> StoredResponse:
        kept = self.kept.get((reviewer, key))
        if kept is None or (response.status_code == 200 and kept.status_code != 200):
            self.kept[(reviewer, key)] = response
            return response
        return kept


class RecordingPublisher:
    """The broker's side of the outbox: what was published, in order."""

    def __init__(self) -> None:
        self.events: list[OutboxEvent] = []

    async def __call__(self, event: OutboxEvent) -> None:
        self.events.append(event)


class Clock:
    """A clock a test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> None:
        self.now += by


def approval_service(
    clock: Clock, **options: Any
) -> tuple[ApprovalService, FakeApprovalStore, RecordingPublisher]:
    """An `ApprovalService` wired as `bootstrap.build_service` wires it, on the fakes."""
    store, published, metrics = FakeApprovalStore(), RecordingPublisher(), ApprovalMetrics()
    outbox = Outbox(
        store,
        published,
        instances=FakeInstances(),
        metrics=metrics,
        clock=clock,
        grace=timedelta(seconds=2),
        replica_timeout=timedelta(seconds=5),
    )
    service = ApprovalService(
        store, outbox=outbox, notes=FakeNotes(), metrics=metrics, clock=clock, **options
    )
    return service, store, published
