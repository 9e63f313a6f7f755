"""What one step of a run tells the world: lifecycle events, approval requests, cancellations.

A step mutates the run and records these beside it; the unit of work stores both as
one checkpoint (its outbox), so state and what to tell never part in a crash.
"""

from dataclasses import dataclass, field
from typing import Any

from hitl_contracts import RunEventType

from hitl_agent.domain.run import PendingCall


@dataclass(frozen=True)
class CancelOrder:
    """Ask the approval service to cancel an approval whose run was cancelled."""

    correlation_id: str
    comment: str


@dataclass
class Changes:
    events: list[tuple[RunEventType, dict[str, Any]]] = field(default_factory=list)
    # Calls newly held for a human: each becomes an approval request.
    held: list[PendingCall] = field(default_factory=list)
    cancels: list[CancelOrder] = field(default_factory=list)

    def emit(self, type_: RunEventType, **detail: Any) -> None:
        self.events.append((type_, detail))
