"""Supervising runs that are not paused: interrupt flags, agent halts, their audit.

Pure data, no I/O. A flag is stored by whoever receives the request (any replica)
and acted on by whichever worker takes the run's next step: at that step boundary
the run pauses instead of stepping.
"""

import uuid
from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, Field

from hitl_agent.domain.run import utcnow

# A supervisor approval's id follows from its interrupt's id, so a worker that pauses
# the run twice (a retry after a lost race) asks once.
SUPERVISOR_NAMESPACE = uuid.UUID("0b7e54a4-51c1-4f0e-8f5c-2b7d1c9e3a61")


class InterruptState(StrEnum):
    # Stored; the run pauses at its next step boundary.
    REQUESTED = "requested"
    # The run paused: a `supervisor` approval waits for a reviewer.
    PAUSED = "paused"
    # The run ended (completed, failed, cancelled) before reaching a boundary.
    ENDED = "ended"


class Interrupt(BaseModel):
    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    run_id: str
    reason: str
    by: str
    requested_at: datetime = Field(default_factory=utcnow)
    state: InterruptState = InterruptState.REQUESTED
    correlation_id: str | None = None
    run_status: str | None = None
    settled_at: datetime | None = None

    @property
    def approval_id(self) -> str:
        return str(uuid.uuid5(SUPERVISOR_NAMESPACE, self.id))


class Halt(BaseModel):
    agent: str
    reason: str
    by: str
    at: datetime = Field(default_factory=utcnow)


class AuditEntry(BaseModel):
    action: str
    agent: str
    by: str
    reason: str = ""
    run_id: str = ""
    detail: dict[str, object] = Field(default_factory=dict)
    at: datetime = Field(default_factory=utcnow)
