"""Supervising runs that are not paused: interrupt flags, agent halts, their audit.

Pure data, no I/O. A flag is stored by whoever receives the request (any replica)
and acted on by whichever worker takes the run's next step: at that step boundary
the run pauses instead of stepping.
"""

import uuid
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from hitl_contracts import ApprovalDecided, RiskLevel, RunEventType
from hitl_contracts.base import utcnow
from pydantic import BaseModel, Field

from hitl_agent.domain.run import PendingCall, PendingKind, Run, RunStatus

# The model-facing tool a supervisor approval is about (as for the loop guard's).
INTERVENTION_TOOL = "request_human_intervention"
NOTE_DELIVERED = "note_delivered"


class Emits(Protocol):
    """Where a rule records the events it causes (the service layer's Changes)."""

    def emit(self, type_: RunEventType, **detail: Any) -> None: ...


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


def apply_supervisor_decision(
    run: Run, pending: PendingCall, decided: ApprovalDecided, changes: Emits
) -> None:
    """A reviewer's answer to an interrupt: go on (with their note for the model) or stop."""
    note = decided.comment.strip()
    if decided.decision.allows_execution:
        if not run.open_calls():
            run.status = RunStatus.RUNNING
        if note:
            pending.context[NOTE_DELIVERED] = False
            if run.turn is None:
                deliver_notes(run)
        changes.emit(
            RunEventType.RESUMED,
            correlation_id=pending.correlation_id,
            supervisor=decided.reviewer,
            note=note,
        )
        return
    run.status = RunStatus.CANCELLED
    why = note or f"the interrupt's approval was {decided.decision.value}"
    run.error = f"stopped by {decided.reviewer or 'the system'} after an interrupt: {why}"
    changes.emit(
        RunEventType.CANCELLED,
        reason=why,
        by=decided.reviewer,
        approvals=[],
        supervisor=True,
    )


def deliver_notes(run: Run) -> None:
    """Hand a supervisor's note to the model before its next call (never mid-turn)."""
    for pending in run.pending:
        if pending.kind is PendingKind.SUPERVISOR and pending.context.get(NOTE_DELIVERED) is False:
            run.messages.append(
                {
                    "role": "user",
                    "content": f"A human supervisor ({pending.reviewer}) paused this run "
                    f"and says: {pending.comment.strip()}",
                }
            )
            pending.context[NOTE_DELIVERED] = True


def supervisor_call(run: Run, flag: Interrupt, timeout: timedelta) -> PendingCall:
    now = utcnow()
    return PendingCall(
        correlation_id=flag.approval_id,
        tool_call_id=f"supervisor_{flag.id[:12]}",
        tool=INTERVENTION_TOOL,
        arguments={
            "reason": f"{flag.by} interrupted this run: {flag.reason}. Let it go on?",
            "context": f"{run.steps} model steps, {run.usage.total_tokens} tokens so far",
            "action_type": "supervise_run",
        },
        reason=f"interrupted by {flag.by}: {flag.reason}",
        risk_level=RiskLevel.MEDIUM,
        requested_at=now,
        expires_at=now + timeout,
        kind=PendingKind.SUPERVISOR,
        context={
            "interrupted_by": flag.by,
            "interrupt_reason": flag.reason,
            "steps": run.steps,
            "total_tokens": run.usage.total_tokens,
        },
        reasoning=_last_reasoning(run),
    )


def _last_reasoning(run: Run) -> str:
    return next(
        (
            str(m.get("content"))
            for m in reversed(run.messages)
            if m.get("role") == "assistant" and m.get("content")
        ),
        "",
    )
