"""A checkpoint: the whole run state after one step, with what that step must tell the world.

It is the unit the run store appends (atomic on (run, seq)) and the outbox delivers
from; `adapters/runs.py` stores it as the document `to_document` gives.
"""

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hitl_contracts import ApprovalRequested, RunEvent
from hitl_contracts.base import utcnow

from hitl_agent.domain.changes import CancelOrder
from hitl_agent.domain.run import Run, RunStatus


@dataclass
class Checkpoint:
    run: Run
    events: list[RunEvent] = field(default_factory=list)
    requests: list[ApprovalRequested] = field(default_factory=list)
    cancels: list[CancelOrder] = field(default_factory=list)
    # Events and requests are on Kafka (only cancellations may be left).
    sent: bool = False
    at: datetime = field(default_factory=utcnow)

    @property
    def id(self) -> str:
        return checkpoint_id(self.run.run_id, self.run.seq)

    @property
    def has_outbox(self) -> bool:
        return bool(self.events or self.requests or self.cancels)

    def to_document(self) -> dict[str, Any]:
        return {
            "_id": self.id,
            "run_id": self.run.run_id,
            "seq": self.run.seq,
            "state": self.run.model_dump(mode="python"),
            "events": [e.model_dump(mode="json") for e in self.events],
            "requests": [r.model_dump(mode="json") for r in self.requests],
            "cancels": [
                {"correlation_id": c.correlation_id, "comment": c.comment} for c in self.cancels
            ],
            "at": self.at,
        }

    @classmethod
    def from_document(cls, doc: dict[str, Any]) -> "Checkpoint":
        return cls(
            run=Run.model_validate(doc["state"]),
            events=[RunEvent.model_validate(e) for e in doc.get("events", [])],
            requests=[ApprovalRequested.model_validate(r) for r in doc.get("requests", [])],
            cancels=[CancelOrder(**c) for c in doc.get("cancels", [])],
            at=doc["at"],
        )


@dataclass(frozen=True)
class EventPage:
    """One checkpoint's events and the run's status once they happened."""

    events: list[RunEvent]
    status: RunStatus


def checkpoint_id(run_id: str, seq: int) -> str:
    return f"{run_id}:{seq:08d}"
