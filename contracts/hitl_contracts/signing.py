"""Signed decisions: only the approval service can say what a reviewer decided.

The approval service signs every `approval.decided` with an Ed25519 key. The
signature covers the fields an agent acts on, serialized as canonical JSON
(RFC 8785, the JSON Canonicalization Scheme) after a fixed prefix:

    b"hitl.approval.decided.v1\\n" + JCS({correlation_id, run_id, agent, tool_call_id,
        tool, decision, arguments, reviewer, decided_at})

`decided_at` is signed as `YYYY-MM-DDTHH:MM:SS.ffffffZ` (UTC). Keys are identified by
their RFC 7638 JWK thumbprint (`key_id`), and published as a JWK set
(`{"keys": [{"kty": "OKP", "crv": "Ed25519", "x": ..., "kid": ...}]}`) so any consumer
can verify with the public key alone, and keys can be rotated: publish the new key,
sign with it, drop the old one once no decision signed with it is in flight.
"""

import base64
import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from hitl_contracts.approval import ApprovalDecided

__all__ = [
    "DECISION_CONTEXT",
    "BadSignature",
    "DecisionSigner",
    "DecisionVerifier",
    "canonical_json",
    "decision_payload",
    "jwk_of",
    "load_private_key",
    "public_key_of",
]

DECISION_CONTEXT = b"hitl.approval.decided.v1\n"
SIGNED_FIELDS = (
    "correlation_id",
    "run_id",
    "agent",
    "tool_call_id",
    "tool",
    "decision",
    "arguments",
    "reviewer",
    "decided_at",
)


class BadSignature(ValueError):
    """A decision that is unsigned, signed by an unknown key, or altered after signing."""


# Canonical JSON (RFC 8785)


def canonical_json(value: Any) -> bytes:
    """`value` as RFC 8785 canonical JSON: sorted keys, no spaces, ECMAScript numbers."""
    return _jcs(value).encode("utf-8")


def _jcs(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _es_number(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, Mapping):
        items = sorted(value.items(), key=lambda kv: str(kv[0]).encode("utf-16-be"))
        return "{" + ",".join(f"{_jcs(str(k))}:{_jcs(v)}" for k, v in items) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_jcs(v) for v in value) + "]"
    raise TypeError(f"{type(value).__name__} has no canonical JSON form")


def _es_number(x: float) -> str:
    """ECMAScript's Number-to-String, which RFC 8785 prescribes for numbers."""
    if not math.isfinite(x):
        raise ValueError(f"{x} has no JSON form")
    if x == 0:
        return "0"
    sign = "-" if x < 0 else ""
    # repr is the shortest decimal that reads back as x, as ECMAScript's digits are.
    shortest = Decimal(repr(abs(x))).normalize().as_tuple()
    digits = "".join(map(str, shortest.digits))
    k = len(digits)
    n = k + int(shortest.exponent)  # x = 0.digits * 10**n
    if k <= n <= 21:
        return sign + digits + "0" * (n - k)
    if 0 < n <= 21:
        return sign + digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return sign + "0." + "0" * -n + digits
    e = n - 1
    fraction = "." + digits[1:] if k > 1 else ""
    return f"{sign}{digits[0]}{fraction}e{'+' if e > 0 else '-'}{abs(e)}"


# What is signed


def _signed_time(at: datetime) -> str:
    if at.tzinfo is None:
        raise BadSignature("decided_at has no time zone")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def decision_payload(decided: ApprovalDecided) -> bytes:
    """The exact bytes a decision's signature covers."""
    fields: dict[str, Any] = {
        "correlation_id": decided.correlation_id,
        "run_id": decided.run_id,
        "agent": decided.agent,
        "tool_call_id": decided.tool_call_id,
        "tool": decided.tool,
        "decision": decided.decision.value,
        "arguments": decided.arguments,
        "reviewer": decided.reviewer,
        "decided_at": _signed_time(decided.decided_at),
    }
    return DECISION_CONTEXT + canonical_json(fields)


# Keys


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    """The RFC 7638 thumbprint of the key's JWK: stable, derived from the key alone."""
    members = {"crv": "Ed25519", "kty": "OKP", "x": _b64(_raw_public(key))}
    return _b64(hashlib.sha256(canonical_json(members)).digest())


def jwk_of(key: Ed25519PublicKey) -> dict[str, str]:
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": _b64(_raw_public(key)),
        "kid": key_id(key),
        "use": "sig",
        "alg": "EdDSA",
    }


def public_key_of(jwk: Mapping[str, Any]) -> Ed25519PublicKey:
    if jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519" or not isinstance(jwk.get("x"), str):
        raise ValueError("not an Ed25519 public JWK (kty OKP, crv Ed25519, x)")
    raw = _unb64(jwk["x"])
    if len(raw) != 32:
        raise ValueError("an Ed25519 public key is 32 bytes")
    return Ed25519PublicKey.from_public_bytes(raw)


def load_private_key(pem: bytes) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("the signing key must be an Ed25519 private key (PEM, PKCS#8)")
    return key


def private_key_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


@dataclass(frozen=True)
class DecisionSigner:
    """The approval service's side: signs decisions with its current key."""

    key: Ed25519PrivateKey

    @classmethod
    def generate(cls) -> "DecisionSigner":
        return cls(Ed25519PrivateKey.generate())

    @property
    def key_id(self) -> str:
        return key_id(self.key.public_key())

    def public_jwk(self) -> dict[str, str]:
        return jwk_of(self.key.public_key())

    def sign(self, decided: ApprovalDecided) -> ApprovalDecided:
        signature = self.key.sign(decision_payload(decided))
        return decided.model_copy(update={"key_id": self.key_id, "signature": _b64(signature)})


class DecisionVerifier:
    """A consumer's side: accepts only decisions signed by one of the trusted keys."""

    def __init__(self, keys: Iterable[Ed25519PublicKey] = ()) -> None:
        self.keys: dict[str, Ed25519PublicKey] = {key_id(k): k for k in keys}

    @classmethod
    def from_jwks(cls, jwks: Mapping[str, Any]) -> "DecisionVerifier":
        entries = jwks.get("keys")
        if not isinstance(entries, list) or not entries:
            raise ValueError('a JWK set is {"keys": [...]} with at least one key')
        return cls(public_key_of(entry) for entry in entries)

    def jwks(self) -> dict[str, list[dict[str, str]]]:
        return {"keys": [jwk_of(k) for k in self.keys.values()]}

    def knows(self, kid: str) -> bool:
        return kid in self.keys

    def verify(self, decided: ApprovalDecided) -> None:
        """Raise BadSignature unless a trusted key signed exactly this decision."""
        if not decided.signature or not decided.key_id:
            raise BadSignature("the decision is not signed")
        key = self.keys.get(decided.key_id)
        if key is None:
            raise BadSignature(f"the decision is signed by unknown key {decided.key_id!r}")
        try:
            signature = _unb64(decided.signature)
        except ValueError:
            raise BadSignature("the signature is not base64url") from None
        try:
            key.verify(signature, decision_payload(decided))
        except InvalidSignature:
            raise BadSignature(
                "the signature does not match the decision (altered or forged)"
            ) from None
