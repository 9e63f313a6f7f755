"""The approval domain's errors: each says what refused the action, for a person."""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hitl_approval.domain.model import Approval, Entry


class ApprovalError(Exception):
    """Root of the approval domain's errors."""


class Conflict(ApprovalError):
    """The approval's state refuses this action; `approval` is that state."""

    def __init__(self, message: str, approval: "Approval") -> None:
        super().__init__(message)
        self.approval = approval


class AlreadyDecided(Conflict):
    def __init__(self, approval: "Approval") -> None:
        super().__init__(
            f"approval {approval.correlation_id} is already {approval.status}", approval
        )


class AlreadyVoted(Conflict):
    def __init__(self, approval: "Approval", reviewer: str) -> None:
        missing = approval.policy.quorum - len(approval.approvers)
        super().__init__(
            f"{reviewer} already approved {approval.correlation_id}; it needs {missing} more "
            f"approval(s) from other reviewers",
            approval,
        )


class NotFound(ApprovalError):
    """No approval with this correlation id."""


class VersionMismatch(ApprovalError):
    """The caller reviewed another version (If-Match); `approval` is the current one."""

    def __init__(self, approval: "Approval", expected: int) -> None:
        super().__init__(
            f"approval {approval.correlation_id} is at version {approval.version}, not {expected}"
        )
        self.approval = approval


class NotAllowed(ApprovalError):
    """The policy does not let this reviewer take this decision (HTTP 403)."""


class InvalidDecision(ApprovalError):
    """The decision itself is malformed (e.g. modify without arguments)."""


class TooLate(ApprovalError):
    """The deadline passed before the action: the timeout goes first; `timeout` records it."""

    def __init__(self, timeout: "Entry") -> None:
        super().__init__("the approval's deadline passed before this action arrived")
        self.timeout = timeout


class NotDue(ApprovalError):
    """Expiry was attempted before the deadline."""


class BrokenApproval(ApprovalError):
    """A stored approval this service cannot read or act on (HTTP 409, never a 500).

    Written by an older version under looser rules (an escalation of 1e15 seconds), or
    damaged in the store: it is left as it is for an operator, and nothing else waits on it.
    """

    def __init__(self, correlation_id: str, reason: str) -> None:
        super().__init__(
            f"approval {correlation_id} is stored in a form this service cannot act on "
            f"({reason}); it can be neither decided nor cancelled here: an operator must "
            "repair or remove it"
        )
        self.correlation_id = correlation_id
        self.reason = reason
