"""Why a decision was not recorded, the same for every channel (REST, web, Slack, email).

The domain raises; this maps each error to one status (an HTTP code, which the web
pages and the email pages answer with too, and Slack and the web show as text) and,
where the error carries it, the approval's current state. A channel renders the
refusal its own way but never picks another status for the same error.
"""

from dataclasses import dataclass

from hitl_approval.domain.errors import (
    ApprovalError,
    BrokenApproval,
    Conflict,
    InvalidDecision,
    NotAllowed,
    NotFound,
    VersionMismatch,
)
from hitl_approval.domain.model import Approval


@dataclass(frozen=True)
class Refusal:
    status: int
    detail: str
    # The state that refused it (already decided, another version), when known.
    current: Approval | None = None


def refusal(error: ApprovalError) -> Refusal:
    match error:
        case NotFound():
            return Refusal(404, str(error))
        case BrokenApproval():
            return Refusal(409, str(error))
        case Conflict():
            # Already decided, or this reviewer already voted under a quorum policy.
            return Refusal(409, str(error), error.approval)
        case VersionMismatch():
            return Refusal(412, str(error), error.approval)
        case NotAllowed():
            return Refusal(403, str(error))
        case InvalidDecision():
            return Refusal(422, str(error))
        case _:
            return Refusal(422, str(error))
