"""Webhook channel: a signed JSON POST for custom integrations.

Receivers verify `X-Hitl-Signature: v1=<hex>` where hex is HMAC-SHA256 with the
shared secret over `"{X-Hitl-Timestamp}.{raw body}"`, and refuse old timestamps.
`X-Hitl-Delivery` is the same on every retry of one delivery, for idempotency.
"""

import hashlib
import hmac
import json
import time
from typing import Any

import httpx
from hitl_contracts import NotificationKind

from hitl_notifier.channels.errors import DeliveryError, retry_after_seconds
from hitl_notifier.domain.notice import Notice

_EVENT_NAME = {
    NotificationKind.REQUESTED: "approval.requested",
    NotificationKind.REMINDER: "approval.reminder",
    NotificationKind.ESCALATION: "approval.escalated",
    NotificationKind.DECIDED: "approval.decided",
}


def payload(notice: Notice) -> dict[str, Any]:
    req = notice.request
    body: dict[str, Any] = {
        "kind": _EVENT_NAME[notice.kind],
        "correlation_id": req.correlation_id,
        "run_id": req.run_id,
        "agent": req.agent,
        "tool": req.tool,
        "arguments": req.arguments,
        "reason": req.reason,
        "risk_level": req.risk_level.value,
        "user_request": req.context.user_request,
        "requested_at": req.requested_at.isoformat(),
        "expires_at": req.expires_at.isoformat(),
        "approval_url": notice.approval_url,
    }
    if notice.decision is not None:
        body["decision"] = notice.decision.model_dump(mode="json")
    return body


def signature(secret: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "v1=" + mac.hexdigest()


class WebhookClient:
    def __init__(self, http: httpx.AsyncClient, *, secret: str) -> None:
        self.http = http
        self.secret = secret

    async def post(self, url: str, body: dict[str, Any], *, delivery_id: str) -> str:
        raw = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-Hitl-Timestamp": timestamp,
            "X-Hitl-Signature": signature(self.secret, timestamp, raw),
            "X-Hitl-Delivery": delivery_id,
        }
        try:
            response = await self.http.post(url, content=raw, headers=headers)
        except httpx.HTTPError as exc:
            raise DeliveryError(f"webhook {url}: {exc!r}") from exc
        if response.status_code >= 300:
            # 4xx other than 408/429 is the receiver refusing this payload for good.
            code = response.status_code
            permanent = 400 <= code < 500 and code not in (408, 425, 429)
            raise DeliveryError(
                f"webhook {url}: HTTP {code}",
                permanent=permanent,
                retry_after=retry_after_seconds(response.headers.get("Retry-After")),
            )
        return f"HTTP {response.status_code}"
