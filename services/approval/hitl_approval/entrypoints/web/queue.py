"""A row of the reviewer queue as the page shows it (pure); the rows come from `views`."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hitl_approval.views import Row


@dataclass(frozen=True)
class QueueItem:
    correlation_id: str
    run_id: str
    agent: str
    tool: str
    risk: str
    status: str
    version: int
    requested_at: datetime
    expires_at: datetime
    arguments: dict[str, Any]
    reason: str
    user_request: str
    escalated: bool
    approvers: list[str]
    quorum: int

    @classmethod
    def of(cls, row: Row) -> "QueueItem":
        request = row.request
        return cls(
            correlation_id=row.correlation_id,
            run_id=request.run_id,
            agent=request.agent,
            tool=request.tool,
            risk=request.risk_level.value,
            status=row.status.value,
            version=row.version,
            requested_at=request.requested_at,
            expires_at=row.expires_at,
            arguments=dict(request.arguments),
            reason=request.reason,
            user_request=request.context.user_request,
            escalated=row.escalated,
            approvers=row.approvers,
            quorum=row.policy.quorum,
        )
