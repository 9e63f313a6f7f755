"""Signed action links: the token an email carries to approve or reject one approval.

The notifier signs, the approval service verifies; both hold `HITL_LINK_SECRET`.
A token names the approval, the action, the recipient it was sent to and when it
stops working (the approval's `expires_at`). Single use is the approval service's
job (a unique insert of the token id), because only it sees the token come back.
"""

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

Action = Literal["approve", "reject"]
ACTIONS: tuple[Action, ...] = ("approve", "reject")
_VERSION = "v1"


class BadLink(ValueError):
    """The token is malformed, tampered with or expired; the message says which."""


@dataclass(frozen=True)
class LinkClaim:
    token_id: str
    correlation_id: str
    action: Action
    recipient: str
    expires_at: datetime


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _mac(secret: str, body: str) -> str:
    digest = hmac.new(secret.encode(), f"{_VERSION}.{body}".encode(), hashlib.sha256).digest()
    return _b64(digest)


def sign(
    secret: str, *, correlation_id: str, action: Action, recipient: str, expires_at: datetime
) -> str:
    claim = {
        "n": secrets.token_urlsafe(12),
        "c": correlation_id,
        "a": action,
        "r": recipient,
        "e": int(expires_at.timestamp()),
    }
    body = _b64(json.dumps(claim, separators=(",", ":")).encode())
    return f"{_VERSION}.{body}.{_mac(secret, body)}"


def verify(secret: str, token: str, *, now: datetime) -> LinkClaim:
    """The claim of a genuine, unexpired token; `BadLink` otherwise."""
    try:
        version, body, mac = token.split(".")
    except ValueError:
        raise BadLink(
            "this link is not a valid hitl link (it may have been cut or altered)"
        ) from None
    if version != _VERSION or not hmac.compare_digest(mac, _mac(secret, body)):
        raise BadLink("this link's signature does not match: it was altered or is not ours")
    try:
        claim = json.loads(_unb64(body))
        action = claim["a"]
        if action not in ACTIONS:
            raise ValueError(action)
        parsed = LinkClaim(
            token_id=str(claim["n"]),
            correlation_id=str(claim["c"]),
            action=action,
            recipient=str(claim["r"]),
            expires_at=datetime.fromtimestamp(int(claim["e"]), UTC),
        )
    except (ValueError, KeyError, TypeError):
        raise BadLink("this link's content is malformed") from None
    if now >= parsed.expires_at:
        raise BadLink(f"this link expired at {parsed.expires_at.isoformat()}")
    return parsed
