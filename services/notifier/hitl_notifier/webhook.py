"""Webhook channel: POST a JSON summary of an approval request."""

import logging
from typing import Any

import httpx
from hitl_shared.contracts import ApprovalRequested

log = logging.getLogger(__name__)


def summary(event: ApprovalRequested, *, approval_url: str) -> dict[str, Any]:
    return {
        "kind": "approval.requested",
        "correlation_id": event.correlation_id,
        "run_id": event.run_id,
        "agent": event.agent,
        "tool": event.tool,
        "arguments": event.arguments,
        "reason": event.reason,
        "risk_level": event.risk_level.value,
        "user_request": event.context.user_request,
        "expires_at": event.expires_at.isoformat(),
        "approval_url": f"{approval_url.rstrip('/')}/v1/approvals/{event.correlation_id}",
    }


async def post(client: httpx.AsyncClient, url: str, payload: dict[str, Any]) -> None:
    response = await client.post(url, json=payload)
    response.raise_for_status()
