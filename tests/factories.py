"""The one way tests make an `ApprovalRequested` (a transfer to Alice, unless told otherwise)
and the `ApprovalDecided` that answers one."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from hitl_contracts import ApprovalDecided, ApprovalRequested, Channel, Decision, RequestContext


def approval_request(
    *,
    at: datetime | None = None,
    timeout: timedelta = timedelta(minutes=30),
    user_request: str = "Transfer 500 to Alice",
    **overrides: Any,
) -> ApprovalRequested:
    """Requested `at` (default now), expiring `timeout` later; any field can be overridden."""
    requested_at = at or datetime.now(UTC)
    fields: dict[str, Any] = {
        "correlation_id": f"c-{uuid.uuid4()}",
        "run_id": f"r-{uuid.uuid4()}",
        "agent": "banking",
        "tool": "transfer",
        "arguments": {"to_account": "alice", "amount": 500},
        "reason": "transfers above 100 need approval",
        "context": RequestContext(user_request=user_request),
        "requested_at": requested_at,
        "expires_at": requested_at + timeout,
    }
    return ApprovalRequested.model_validate({**fields, **overrides})


def approval_decision(
    request: ApprovalRequested,
    *,
    at: datetime,
    decision: Decision = Decision.APPROVED,
    channel: Channel = Channel.API,
    **overrides: Any,
) -> ApprovalDecided:
    """`request` decided by alice `at`; any field can be overridden."""
    fields: dict[str, Any] = {
        "correlation_id": request.correlation_id,
        "run_id": request.run_id,
        "decision": decision,
        "reviewer": "alice",
        "channel": channel,
        "decided_at": at,
    }
    return ApprovalDecided.model_validate({**fields, **overrides})
