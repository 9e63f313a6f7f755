"""A reviewer's decision applied to a held call (or to a guard's question); no I/O.

`apply_decision` records it and says what the service layer must do next;
`outcome_of` says what the decision means for the held call: a result to tell the
model, or a call to execute first; `record_result` puts that result into the turn.
Approved runs what the reviewer saw; modified runs the edited arguments after
validating them again; anything else runs nothing and tells the model plainly. The
run carries on only once every held call of its turn has its result.
"""

import json
import logging
from dataclasses import dataclass
from enum import Enum
from typing import Any

from hitl_contracts import ApprovalDecided, Decision, RunEventType
from pydantic import ValidationError

from hitl_agent.domain.changes import Changes
from hitl_agent.domain.policy import PolicyArgs
from hitl_agent.domain.run import PendingCall, PendingKind, Run, RunStatus
from hitl_agent.tools.registry import Tool, describe_validation

log = logging.getLogger(__name__)


class Verdict(Enum):
    """What applying a decision asks of the service layer."""

    # Store the run as it now is (a guard's answer; a call outside the turn).
    RECORDED = "recorded"
    # Work out the held call's outcome (`outcome_of`), then store.
    OUTCOME = "outcome"
    # Already applied: a duplicate delivery. Nothing to store.
    DUPLICATE = "duplicate"
    # A second, different decision for a decided call: never let it change course.
    CONFLICT = "conflict"


@dataclass(frozen=True)
class Execute:
    """The held call runs with `args`; the model is told `prefix` + its result."""

    tool: Tool
    args: PolicyArgs
    preview: dict[str, Any] | None
    prefix: str = ""


def apply_decision(
    run: Run, pending: PendingCall, decided: ApprovalDecided, changes: Changes
) -> Verdict:
    """Record the decision once; a checkpoint of an older version that stored the
    decision without its outcome is completed (OUTCOME) too."""
    if run.status.terminal:
        return Verdict.DUPLICATE
    if not pending.resolved:
        record_decision(run, pending, decided, changes)
        return Verdict.OUTCOME if awaits_result(run, pending) else Verdict.RECORDED
    if not awaits_result(run, pending):
        return Verdict.DUPLICATE
    if pending.decision != decided.decision.value:
        return Verdict.CONFLICT
    return Verdict.OUTCOME


def record_decision(
    run: Run, pending: PendingCall, decided: ApprovalDecided, changes: Changes
) -> None:
    """Mark the held call decided.

    When this was the run's last open call the run has resumed: it is running again
    and `resumed` goes out with this checkpoint, before the next model call (and,
    within the checkpoint, before the call's outcome).
    """
    pending.resolved = True
    pending.decision = decided.decision.value
    pending.comment = decided.comment
    pending.reviewer = decided.reviewer
    changes.emit(
        RunEventType.DECISION_APPLIED,
        correlation_id=pending.correlation_id,
        tool=pending.tool,
        decision=decided.decision.value,
        reviewer=decided.reviewer,
        comment=decided.comment,
    )
    if pending.kind is PendingKind.GUARD:
        _apply_guard(run, pending, decided, changes)
        return
    if not awaits_result(run, pending):
        # Cannot happen with runs this code stored; never leave such a run stuck.
        log.error("decision for a call outside the current turn", extra={"run_id": run.run_id})
        if not run.open_calls():
            run.status = RunStatus.RUNNING
        return
    if not run.open_calls():
        run.status = RunStatus.RUNNING
        changes.emit(RunEventType.RESUMED, correlation_id=pending.correlation_id)


def outcome_of(pending: PendingCall, decided: ApprovalDecided, tool: Tool | None) -> str | Execute:
    """The held call's result, or what must execute to get it."""
    if tool is None:
        # The agent's tools changed while the run waited (a new deployment).
        return f"Error: the tool {pending.tool!r} is no longer available; nothing was executed."
    who = f"{decided.reviewer} via {decided.channel.value}"
    comment = decided.comment.strip()
    decision = decided.decision
    if decision.allows_execution and tool.answered_by_human:
        if comment:
            return f"The human operator ({who}) answered: {comment}"
        return f"The human operator ({who}) acknowledged your request without an answer."
    if decision is Decision.APPROVED:
        # The reviewer approved what they saw, so execution uses what they saw.
        return Execute(tool, tool.parse(pending.arguments), pending.context)
    if decision is Decision.MODIFIED:
        edited = decided.arguments or {}
        try:
            args = tool.parse(edited)
        except ValidationError as exc:
            return (
                f"The human operator's edited arguments were invalid "
                f"({describe_validation(exc)}), so this was treated as a rejection "
                "and nothing was executed."
            )
        changed = json.dumps(args.public_arguments())
        return Execute(
            tool, args, None, f"A human operator ({who}) changed the arguments to {changed}. "
        )
    if decision is Decision.EXPIRED:
        return (
            "The approval request timed out without a human decision, so this action "
            "was not executed. Treat it as rejected."
        )
    if decision is Decision.CANCELLED:
        return "The approval request was cancelled, so this action was not executed."
    return f"The human operator rejected this: {comment or 'no reason given'}"


def record_result(run: Run, pending: PendingCall, result: str) -> None:
    """The held call's result is in; the turn closes once every call has one."""
    turn = run.turn
    assert turn is not None
    turn.add_result(pending.tool_call_id, result)
    if not run.open_calls():
        run.close_turn()


def outcomes_outstanding(run: Run) -> bool:
    """Every held call is decided but some outcome is not in: its handler is on it."""
    turn = run.turn
    return (
        turn is not None
        and not turn.unhandled()
        and not run.open_calls()
        and any(turn.result_of(call_id) is None for call_id in turn.held)
    )


def awaits_result(run: Run, pending: PendingCall) -> bool:
    """A held tool call of the current turn whose result is not in yet."""
    turn = run.turn
    return (
        pending.kind is PendingKind.TOOL
        and turn is not None
        and pending.tool_call_id in turn.held
        and turn.result_of(pending.tool_call_id) is None
    )


def _apply_guard(
    run: Run, pending: PendingCall, decided: ApprovalDecided, changes: Changes
) -> None:
    why = str(pending.context.get("guard", pending.reason))
    if decided.decision.allows_execution:
        run.extend_limits()
        answer = decided.comment.strip() or "go on"
        run.messages.append(
            {
                "role": "user",
                "content": f"A human operator reviewed this run after it was stopped "
                f"({why}) and says: {answer}",
            }
        )
        run.status = RunStatus.RUNNING
        changes.emit(RunEventType.RESUMED, correlation_id=pending.correlation_id, guard=why)
        return
    run.status = RunStatus.FAILED
    run.error = (
        f"stopped by the loop guard ({why}); the human operator did not let it go on "
        f"({decided.decision.value}: {decided.comment or 'no comment'})"
    )
    changes.emit(RunEventType.FAILED, error=run.error)
