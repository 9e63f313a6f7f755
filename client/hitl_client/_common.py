"""What the sync and async clients share: building requests, reading answers, retry timing."""

import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import httpx

from hitl_client.errors import Unavailable, error_for, retry_after
from hitl_client.models import ApprovalPage, ApprovalState

DEFAULT_URL = "http://127.0.0.1:8081"
# The longest one long-poll asks the service to hold (it may cap lower).
LONG_POLL_SECONDS = 60.0
# Read timeout beyond the long-poll itself, for the answer to arrive.
LONG_POLL_SLACK = 15.0


def base_url_of(base_url: str | None) -> str:
    return (base_url or os.environ.get("HITL_APPROVAL_URL") or DEFAULT_URL).rstrip("/")


def headers_of(token: str | None) -> dict[str, str]:
    token = token if token is not None else os.environ.get("HITL_TOKEN")
    return {"Authorization": f"Bearer {token}"} if token else {}


@dataclass(frozen=True)
class Retry:
    """503 and dropped connections are retried, `attempts` times at most, honouring
    Retry-After up to `max_delay` seconds. Every request this client retries is idempotent
    (reads, creates with a correlation id, decisions with an Idempotency-Key)."""

    attempts: int = 3
    max_delay: float = 30.0
    backoff: float = 0.5

    def delay(self, attempt: int, response: httpx.Response | None) -> float:
        told = retry_after(response) if response is not None else None
        guess = self.backoff * 2**attempt
        return min(self.max_delay, told if told is not None else guess)


def retriable(response: httpx.Response) -> bool:
    return response.status_code == 503


def raise_for(response: httpx.Response) -> None:
    if response.status_code >= 400:
        raise error_for(response)


def give_up(response: httpx.Response | None, error: Exception | None) -> Exception:
    if response is not None:
        return error_for(response)
    assert error is not None
    return Unavailable(0, f"approval service unreachable: {error}", None)


def create_request(
    tool: str,
    arguments: Mapping[str, Any],
    reason: str,
    *,
    correlation_id: str | None,
    idempotency_key: str | None,
    timeout: float | timedelta | None,
    expires_at: datetime | None,
    context: str | Mapping[str, Any] | None,
    fields: Mapping[str, Any],
) -> tuple[dict[str, Any], dict[str, str]]:
    """The JSON body and headers of `POST /v1/approvals`."""
    body: dict[str, Any] = {"tool": tool, "arguments": dict(arguments), "reason": reason}
    body.update({k: v for k, v in fields.items() if v is not None})
    headers: dict[str, str] = {}
    if idempotency_key is not None:
        headers["Idempotency-Key"] = idempotency_key
    if correlation_id is not None:
        body["correlation_id"] = correlation_id
    elif idempotency_key is None:
        # Chosen here, not by the server: a retry after a lost answer is then the same request.
        body["correlation_id"] = str(uuid.uuid4())
    if isinstance(timeout, timedelta):
        timeout = timeout.total_seconds()
    if timeout is not None:
        body["timeout_seconds"] = timeout
    if expires_at is not None:
        body["expires_at"] = expires_at.isoformat()
    if isinstance(context, str):
        body["context"] = {"user_request": context}
    elif context is not None:
        body["context"] = dict(context)
    return body, headers


def decide_request(
    decision: str,
    *,
    arguments: Mapping[str, Any] | None,
    comment: str,
    if_match: int | None,
    idempotency_key: str | None,
) -> tuple[dict[str, Any], dict[str, str]]:
    body: dict[str, Any] = {"decision": decision, "comment": comment}
    if arguments is not None:
        body["arguments"] = dict(arguments)
    # A retried decision replays its first answer instead of meeting its own 409.
    headers = {"Idempotency-Key": idempotency_key or str(uuid.uuid4())}
    if if_match is not None:
        headers["If-Match"] = f'"{if_match}"'
    return body, headers


def list_params(**filters: Any) -> dict[str, Any]:
    return {k: v for k, v in filters.items() if v is not None}


def wait_params(seconds: float, after_version: int) -> dict[str, Any]:
    return {"wait": f"{max(0.0, seconds):.3f}", "after_version": after_version}


def state_of(response: httpx.Response) -> ApprovalState:
    raise_for(response)
    return ApprovalState.model_validate_json(response.content)


def page_of(response: httpx.Response) -> ApprovalPage:
    raise_for(response)
    return ApprovalPage.model_validate_json(response.content)


def path_of(correlation_id: str) -> str:
    from urllib.parse import quote

    return f"/v1/approvals/{quote(correlation_id, safe='')}"
