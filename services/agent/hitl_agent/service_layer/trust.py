"""Whether a decision may move anything: signed by the approval service, about this call.

Anyone who can write to `approval.decided` can make up a decision, so the agent acts
only on one that (1) carries a valid signature by a trusted approval-service key,
(2) names exactly the call the agent holds (run, agent, tool, tool call), and
(3) for an edit, does not widen what the reviewer was asked (the tool's edit policy).
Anything else is refused: written to the run's history, counted, dead-lettered; the
run stays paused, so the real decision can still come.
"""

from dataclasses import dataclass
from typing import Any

from hitl_contracts import ApprovalDecided, Decision
from hitl_contracts.edits import edit_problem
from hitl_shared.decision_keys import DecisionKeys
from pydantic import ValidationError

from hitl_agent.domain.run import PendingCall, Run
from hitl_agent.tools.registry import Tool


@dataclass(frozen=True)
class Refusal:
    # A short stable label for metrics: unsigned, unknown_key, bad_signature,
    # wrong_run, wrong_agent, wrong_tool, wrong_call, widening_edit.
    code: str
    reason: str


class DecisionRefused(Exception):
    def __init__(self, refusal: Refusal) -> None:
        super().__init__(f"decision refused ({refusal.code}): {refusal.reason}")
        self.refusal = refusal


async def signature_refusal(keys: DecisionKeys, decided: ApprovalDecided) -> Refusal | None:
    """Why the signature is not one of ours, or None. KeysUnavailable propagates (retry)."""
    if not decided.signature or not decided.key_id:
        return Refusal("unsigned", "the decision is not signed by the approval service")
    verifier = await keys.verifier_for(decided.key_id)
    if not verifier.knows(decided.key_id):
        return Refusal(
            "unknown_key", f"the decision is signed by an unknown key {decided.key_id!r}"
        )
    try:
        verifier.verify(decided)
    except ValueError as exc:  # BadSignature
        return Refusal("bad_signature", str(exc))
    return None


def match_refusal(
    run: Run, pending: PendingCall, decided: ApprovalDecided, tool: Tool | None
) -> Refusal | None:
    """Why this (validly signed) decision is not about the call the run holds, or None."""
    if decided.run_id != run.run_id:
        return Refusal("wrong_run", f"the decision is for run {decided.run_id!r}")
    if decided.agent != run.agent:
        return Refusal(
            "wrong_agent", f"the decision is for agent {decided.agent!r}, not {run.agent!r}"
        )
    if decided.tool != pending.tool:
        return Refusal(
            "wrong_tool", f"the decision is for tool {decided.tool!r}, not {pending.tool!r}"
        )
    if decided.tool_call_id != pending.tool_call_id:
        return Refusal(
            "wrong_call",
            f"the decision is for call {decided.tool_call_id!r}, not {pending.tool_call_id!r}",
        )
    if decided.decision is Decision.MODIFIED and tool is not None:
        problem = edit_problem(pending.arguments, _as_run(tool, decided), tool.policy.edit)
        if problem is not None:
            return Refusal("widening_edit", problem)
    return None


def _as_run(tool: Tool, decided: ApprovalDecided) -> dict[str, Any]:
    """The edit as it would execute (defaults filled, names normalised), else as sent.

    Comparing what would run is what matters: an omitted `from_account` is the
    default one, "Alice" is "alice". An edit the schema refuses is compared raw; it
    never runs (it counts as a rejection).
    """
    edited = decided.arguments or {}
    try:
        return tool.parse(edited).public_arguments()
    except ValidationError:
        return edited
