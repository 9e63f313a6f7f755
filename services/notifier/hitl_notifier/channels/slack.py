"""Slack Web API client: chat.postMessage and chat.update with a bot token.

Slack answers HTTP 200 with `{"ok": false, "error": ...}` for most failures; errors
that no retry can fix (bad token, unknown channel) are permanent, the rest
(rate limits, 5xx, timeouts) are worth another attempt.
"""

from typing import Any

import httpx

from hitl_notifier.channels.errors import DeliveryError, retry_after_seconds

PERMANENT_ERRORS = frozenset(
    {
        "invalid_auth",
        "not_authed",
        "account_inactive",
        "token_revoked",
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "msg_too_long",
        "invalid_blocks",
        "missing_scope",
        "message_not_found",
        "cant_update_message",
    }
)


class SlackClient:
    def __init__(self, http: httpx.AsyncClient, *, api_url: str, token: str) -> None:
        self.http = http
        self.api_url = api_url.rstrip("/")
        self.token = token

    async def post(self, channel: str, message: dict[str, Any]) -> str:
        """Post; returns `channel|ts`, the reference chat.update needs."""
        body = await self._call("chat.postMessage", {"channel": channel, **message})
        return f"{body.get('channel', channel)}|{body['ts']}"

    async def update(self, ref: str, message: dict[str, Any]) -> str:
        channel, _, ts = ref.partition("|")
        await self._call("chat.update", {"channel": channel, "ts": ts, **message})
        return ref

    async def _call(self, method: str, payload: dict[str, Any]) -> dict[str, Any]:
        if not self.token:
            raise DeliveryError("NOTIFIER_SLACK_BOT_TOKEN is not set", permanent=True)
        try:
            response = await self.http.post(
                f"{self.api_url}/{method}",
                json=payload,
                headers={"Authorization": f"Bearer {self.token}"},
            )
        except httpx.HTTPError as exc:
            raise DeliveryError(f"Slack {method}: {exc!r}") from exc
        if response.status_code == 429:
            wait = retry_after_seconds(response.headers.get("Retry-After"))
            raise DeliveryError(f"Slack {method}: rate limited", retry_after=wait)
        if response.status_code >= 400:
            raise DeliveryError(
                f"Slack {method}: HTTP {response.status_code}",
                permanent=400 <= response.status_code < 500 and response.status_code != 408,
            )
        try:
            body: dict[str, Any] = response.json()
        except ValueError as exc:
            raise DeliveryError(f"Slack {method}: answer is not JSON") from exc
        if not body.get("ok"):
            error = str(body.get("error", "unknown_error"))
            raise DeliveryError(f"Slack {method}: {error}", permanent=error in PERMANENT_ERRORS)
        return body
