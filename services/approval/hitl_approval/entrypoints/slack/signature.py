"""Slack request signing: HMAC-SHA256 over `v0:{timestamp}:{raw body}` (pure).

https://api.slack.com/authentication/verifying-requests-from-slack
"""

import hashlib
import hmac


class BadSignature(Exception):
    """The request is not from Slack, was altered, or is a replay."""


def sign(secret: str, timestamp: str, body: bytes) -> str:
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def verify(
    secret: str,
    *,
    timestamp: str | None,
    signature: str | None,
    body: bytes,
    now: float,
    max_age: int,
) -> None:
    if not timestamp or not signature:
        raise BadSignature("missing X-Slack-Request-Timestamp or X-Slack-Signature")
    try:
        sent = int(timestamp)
    except ValueError:
        raise BadSignature("X-Slack-Request-Timestamp is not a number") from None
    if abs(now - sent) > max_age:
        raise BadSignature(f"request timestamp is more than {max_age} s away: a replay")
    if not hmac.compare_digest(sign(secret, timestamp, body), signature):
        raise BadSignature("signature does not match the signing secret")
