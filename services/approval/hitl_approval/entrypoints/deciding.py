"""One way for Slack and email to decide: as a named reviewer, through the service."""

from dataclasses import dataclass

from hitl_contracts import Channel

from hitl_approval.domain.model import Approval, ApprovalError, Verb
from hitl_approval.domain.reviewer import Reviewer
from hitl_approval.entrypoints.refusals import refusal
from hitl_approval.service_layer.services import ApprovalService, DecideCommand


@dataclass(frozen=True)
class Outcome:
    """`approval` is set when this decision won; otherwise `refusal` says why not."""

    approval: Approval | None = None
    refusal: str = ""
    current: Approval | None = None
    http_status: int = 200


async def decide(
    service: ApprovalService,
    *,
    correlation_id: str,
    verb: Verb,
    reviewer: Reviewer,
    channel: Channel,
    comment: str = "",
) -> Outcome:
    command = DecideCommand(
        correlation_id=correlation_id,
        verb=verb,
        reviewer=reviewer.name,
        channel=channel,
        comment=comment,
    )
    try:
        return Outcome(approval=await service.decide(command))
    except ApprovalError as exc:
        refused = refusal(exc)
        return Outcome(refusal=refused.detail, current=refused.current, http_status=refused.status)


def outcome_text(approval: Approval) -> str:
    """`approved by alice via slack` for a decided approval."""
    decided = approval.decision
    if decided is None:
        # A vote under a quorum policy: recorded, the approval waits for more.
        return "vote recorded; still pending until enough reviewers approve"
    return f"{decided.decision.value} by {decided.reviewer} via {decided.channel.value}"
