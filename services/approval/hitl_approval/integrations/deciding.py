"""One way for Slack and email to decide: as a named reviewer, through the service."""

from dataclasses import dataclass

from hitl_shared.contracts import Channel

from hitl_approval.domain.model import AlreadyDecided, Approval, ApprovalError, Verb
from hitl_approval.entrypoints.auth import Reviewer
from hitl_approval.service_layer.services import ApprovalService, DecideCommand, NotFound


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
    if not reviewer.can("reviewer"):
        return Outcome(refusal=f"{reviewer.name} lacks the reviewer role", http_status=403)
    command = DecideCommand(
        correlation_id=correlation_id,
        verb=verb,
        reviewer=reviewer.name,
        channel=channel,
        comment=comment,
    )
    try:
        return Outcome(approval=await service.decide(command))
    except NotFound as exc:
        return Outcome(refusal=str(exc), http_status=404)
    except AlreadyDecided as exc:
        return Outcome(refusal=str(exc), current=exc.approval, http_status=409)
    except ApprovalError as exc:
        # Policy refusals (four-eyes, groups, ...) speak for themselves.
        return Outcome(refusal=str(exc), http_status=403)


def outcome_text(approval: Approval) -> str:
    """`approved by alice via slack` for a decided approval."""
    decided = approval.decision
    if decided is None:
        return "still pending"
    return f"{decided.decision.value} by {decided.reviewer} via {decided.channel.value}"
