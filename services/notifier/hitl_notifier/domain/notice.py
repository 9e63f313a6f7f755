"""What a notification says, independent of the channel that carries it."""

from dataclasses import dataclass
from datetime import datetime

from hitl_contracts import ApprovalDecided, ApprovalRequested, NotificationKind

_VERDICT = {
    "approved": "Approved",
    "modified": "Approved with changes",
    "rejected": "Rejected",
    "expired": "Expired",
    "cancelled": "Cancelled",
}


@dataclass(frozen=True)
class Notice:
    kind: NotificationKind
    request: ApprovalRequested
    approval_url: str
    now: datetime
    decision: ApprovalDecided | None = None

    @property
    def title(self) -> str:
        req = self.request
        if self.decision is not None:
            return f"{self.verdict}: {req.agent} wants to call {req.tool}"
        prefix = {
            NotificationKind.REMINDER: "Reminder: approval still needed",
            NotificationKind.ESCALATION: "Escalated: approval needed",
        }.get(self.kind, "Approval needed")
        return f"{prefix}: {req.agent} wants to call {req.tool}"

    @property
    def verdict(self) -> str:
        if self.decision is None:
            return "Pending"
        return _VERDICT.get(self.decision.decision.value, self.decision.decision.value)

    @property
    def outcome_line(self) -> str:
        """Who decided how, through which channel; empty while pending."""
        d = self.decision
        if d is None:
            return ""
        line = f"{self.verdict} by {d.reviewer} via {d.channel.value} at {d.decided_at:%Y-%m-%d %H:%M UTC}"
        return f"{line}: {d.comment}" if d.comment else line

    @property
    def time_left(self) -> str:
        return time_left(self.now, self.request.expires_at)


def time_left(now: datetime, expires_at: datetime) -> str:
    seconds = int((expires_at - now).total_seconds())
    if seconds <= 0:
        return "expired"
    if seconds < 90:
        return f"{seconds} seconds"
    minutes = round(seconds / 60)
    if minutes < 90:
        return f"{minutes} minutes"
    hours = round(seconds / 3600)
    if hours < 48:
        return f"{hours} hours"
    return f"{round(seconds / 86400)} days"
