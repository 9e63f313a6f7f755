"""What the notifier's service layer needs from the outside world, as `typing.Protocol`s.

The MongoDB store (`adapters/store.py`) and the Kafka outcome publisher
(`adapters/outcomes.py`) satisfy these structurally; the unit tests use the
in-memory fakes in `tests/fakes.py`. Each port lists only what a use case calls.
"""

from datetime import datetime
from typing import Protocol

from hitl_contracts import (
    ApprovalDecided,
    ApprovalRequested,
    NotificationDeadLetter,
    NotificationRecorded,
)

from hitl_notifier.domain.deliveries import ApprovalState, Delivery, DeliveryRecord


class DeliveryStore(Protocol):
    """What the dispatcher reads and writes while it sends one claimed delivery."""

    async def state(self, correlation_id: str) -> ApprovalState | None: ...

    async def attempted(
        self, key: str, *, attempts: int, error: str, now: datetime, lease_until: datetime
    ) -> None: ...

    async def finish(
        self,
        key: str,
        *,
        status: str,
        attempts: int,
        error: str = "",
        message_ref: str = "",
        now: datetime,
    ) -> None: ...


class NotifierStore(DeliveryStore, Protocol):
    """Approvals as the notifier knows them, and deliveries: a claim is a unique-key
    insert, so of two replicas (or a redelivered event) exactly one sends."""

    async def remember(
        self,
        request: ApprovalRequested,
        *,
        remind_at: datetime | None,
        escalated: bool,
        asking: bool = True,
    ) -> ApprovalState:
        """Record a request (or its escalation); returns what is known after that.

        `asking` false: no question will be claimed for it (nobody to ask)."""
        ...

    async def mark_asked(self, correlation_id: str) -> None:
        """Questions are about to be claimed for an approval remembered as unasked."""
        ...

    async def record_decision(self, decided: ApprovalDecided) -> ApprovalState: ...

    async def due_reminders(self, now: datetime, *, limit: int = 200) -> list[ApprovalState]: ...

    async def mark_reminded(self, correlation_id: str) -> None: ...

    async def claim(self, delivery: Delivery, *, now: datetime, lease_until: datetime) -> bool:
        """True for the one caller that gets to send this delivery."""
        ...

    async def sent(self, correlation_id: str) -> list[DeliveryRecord]: ...

    async def followed_up(self, keys: list[str]) -> None: ...

    async def abandoned(self, now: datetime, *, limit: int = 100) -> list[DeliveryRecord]: ...

    async def take_over(self, record: DeliveryRecord, *, lease_until: datetime) -> bool:
        """Renew an abandoned lease; False when someone else renewed it first."""
        ...


class Outcomes(Protocol):
    """Where delivery outcomes go: recorded (sent or failed) and dead letters."""

    async def recorded(self, event: NotificationRecorded) -> None: ...

    async def dead_letter(self, event: NotificationDeadLetter) -> None: ...
