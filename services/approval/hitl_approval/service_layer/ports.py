"""What the service layer needs from the outside world, as `typing.Protocol`s.

The MongoDB adapters (`adapters/`) satisfy these structurally; the unit tests use
the in-memory fakes in `tests/fakes.py`. Each port lists only what a use case calls.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from hitl_contracts import NotificationRecorded

from hitl_approval.domain.history import Note
from hitl_approval.domain.model import Approval, Entry


@dataclass(frozen=True)
class OutboxItem:
    correlation_id: str
    entry: Entry
    owner: str  # the replica that stored it and publishes it inline; "" if unknown


@dataclass(frozen=True)
class StoredResponse:
    """The first answer to a decision sent with an Idempotency-Key, replayed on retry."""

    fingerprint: str
    status_code: int
    body: dict[str, Any]
    headers: dict[str, str]


class ApprovalStore(Protocol):
    """Approval streams: an append is atomic on (approval, seq); listing rows follow."""

    # This replica's id: the owner of the outbox entries it stores.
    instance: str

    async def add(self, approval: Approval) -> bool:
        """Store a new request; False when this correlation id already exists."""
        ...

    async def add_many(self, approvals: list[Approval]) -> list[bool]: ...

    async def get(self, correlation_id: str) -> Approval | None:
        """None if there is none; raises BrokenApproval if it cannot be read."""
        ...

    def recent(self, correlation_id: str) -> Approval | None:
        """The approval as this process last stored or read it, without a read (None if
        it has not): a prefix of its stream, maybe not all of it."""
        ...

    async def append(self, approval: Approval, entry: Entry) -> bool:
        """False when another writer took that seq first."""
        ...

    async def project(self, approval: Approval) -> None: ...

    async def due(self, now: datetime, *, limit: int = 200) -> list[str]: ...

    async def set_aside(self, correlation_id: str, reason: str) -> None: ...

    async def unpublished(self, *, before: datetime, limit: int = 200) -> list[OutboxItem]: ...

    async def is_unpublished(self, correlation_id: str, seq: int) -> bool: ...

    async def entry_at(self, correlation_id: str, seq: int) -> tuple[OutboxItem, bool] | None:
        """The stored entry at `seq` with its owner, and whether it is published; None
        if there is none (yet)."""
        ...

    async def mark_published(self, correlation_id: str, seq: int) -> None: ...

    async def mark_published_many(self, keys: list[tuple[str, int]]) -> None:
        """`mark_published` for many entries in one round trip."""
        ...


class NoteStore(Protocol):
    async def record(self, event: NotificationRecorded) -> bool: ...

    async def of(self, correlation_id: str) -> list[Note]: ...


class InstanceStore(Protocol):
    """Heartbeats of the replicas, so the outbox relay knows whose leftovers to take."""

    async def beat(self, instance: str, now: datetime) -> None: ...

    async def alive(self, now: datetime, *, within: timedelta) -> set[str]: ...

    async def dead(self, now: datetime, *, within: timedelta) -> set[str]: ...

    async def forget(self, instances: set[str]) -> None: ...


class IdempotencyKeys(Protocol):
    async def get(self, reviewer: str, key: str) -> StoredResponse | None: ...

    async def remember(
        self, reviewer: str, key: str, response: StoredResponse, *, now: datetime
    ) -> StoredResponse:
        """Store `response` unless one is there; return the one that is kept."""
        ...
