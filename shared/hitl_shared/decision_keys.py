"""Which keys may sign an `approval.decided`: the approval service's public keys.

A consumer that acts on decisions (the agent, the notifier, a client) verifies each
one against the approval service's public keys, from one of two sources:

- pinned: a JWK set given in `<PREFIX>_DECISION_KEYS` (JSON) or
  `<PREFIX>_DECISION_KEYS_FILE`; nothing is fetched, an unknown key id is refused.
- published: `GET <approval_url>/v1/keys`, cached. A decision signed by a key id not in
  the cache triggers one refetch (a rotated key), at most once per `refetch_seconds`, so
  forged decisions with made-up key ids cannot turn into a request flood.

When the keys cannot be fetched, `KeysUnavailable` is raised: the caller retries later.
It is never read as "valid", and never as "forged" either (a real decision must not be
lost because the approval service was restarting).
"""

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import httpx
from hitl_contracts.approval import ApprovalDecided
from hitl_contracts.signing import BadSignature, DecisionVerifier

from hitl_shared.http_limits import Unavailable

__all__ = ["BadSignature", "DecisionKeys", "KeysUnavailable", "parse_jwks"]

log = logging.getLogger(__name__)

KEYS_PATH = "/v1/keys"
# A JWK set of a few keys is far below this; anything bigger is not one.
MAX_JWKS_BYTES = 64 * 1024


class KeysUnavailable(Unavailable, ConnectionError):
    """The approval service's public keys could not be fetched; retry later.

    Also a ConnectionError, so consumers that retry connection failures (rather than
    dead-letter them) treat it the same way.
    """

    def __init__(self, why: str) -> None:
        super().__init__("the approval service's signing keys")
        self.why = why

    def __str__(self) -> str:
        return f"decision keys unavailable: {self.why}"


def parse_jwks(raw: str | bytes, source: str) -> DecisionVerifier:
    """A verifier from JWK set JSON; ValueError naming `source` when it is not one."""
    try:
        document = json.loads(raw)
        if not isinstance(document, Mapping):
            raise ValueError('expected a JSON object {"keys": [...]}')
        return DecisionVerifier.from_jwks(document)
    except ValueError as exc:
        raise ValueError(f"{source}: not an Ed25519 JWK set: {exc}") from exc


class DecisionKeys:
    """The trusted decision keys, pinned or fetched from the approval service."""

    def __init__(
        self,
        *,
        url: str = "",
        pinned: DecisionVerifier | None = None,
        timeout_seconds: float = 2.0,
        refetch_seconds: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if pinned is None and not url:
            raise ValueError("decision keys need pinned keys or the approval service's URL")
        self.url = url.rstrip("/") + KEYS_PATH if url else ""
        self.pinned = pinned
        self.timeout_seconds = timeout_seconds
        self.refetch_seconds = refetch_seconds
        self._clock = clock
        self._transport = transport
        self._cached: DecisionVerifier | None = None
        self._fetched_at: float | None = None
        self._lock = asyncio.Lock()

    @classmethod
    def configured(
        cls, *, approval_url: str, inline: str = "", file: str = "", source: str
    ) -> "DecisionKeys":
        """Pinned keys when `inline` or `file` is given (both are read), else fetched keys.

        `source` names the setting in errors, e.g. "AGENT_DECISION_KEYS".
        """
        verifier: DecisionVerifier | None = None
        if inline or file:
            keys = {}
            if inline:
                keys.update(parse_jwks(inline, source).keys)
            if file:
                path = Path(file)
                keys.update(parse_jwks(path.read_bytes(), f"{source}_FILE {path}").keys)
            verifier = DecisionVerifier(keys.values())
        return cls(url=approval_url, pinned=verifier)

    @property
    def describe(self) -> str:
        if self.pinned is not None:
            return f"{len(self.pinned.keys)} pinned key(s)"
        return f"fetched from {self.url}"

    async def verifier_for(self, kid: str) -> DecisionVerifier:
        """A verifier that knows `kid` if any trusted source does.

        Raises KeysUnavailable when the published keys had to be fetched and could not be.
        """
        if self.pinned is not None:
            return self.pinned
        cached = self._cached
        if cached is not None and (not kid or cached.knows(kid)):
            return cached
        async with self._lock:
            cached = self._cached
            if cached is not None and (not kid or cached.knows(kid)):
                return cached  # fetched while we waited for the lock
            now = self._clock()
            recent = self._fetched_at is not None and now - self._fetched_at < self.refetch_seconds
            if cached is not None and recent:
                # Fetched moments ago and the key is not there: it is not a key of ours.
                return cached
            self._cached = await self._fetch()
            self._fetched_at = self._clock()
            return self._cached

    async def verify(self, decided: ApprovalDecided) -> None:
        """Raise BadSignature unless a trusted key signed exactly this decision."""
        if not decided.signature or not decided.key_id:
            raise BadSignature("the decision is not signed")
        verifier = await self.verifier_for(decided.key_id)
        verifier.verify(decided)

    async def _fetch(self) -> DecisionVerifier:
        try:
            async with httpx.AsyncClient(
                timeout=self.timeout_seconds, transport=self._transport
            ) as client:
                response = await client.get(self.url, headers={"Accept": "application/json"})
        except httpx.HTTPError as exc:
            raise KeysUnavailable(f"GET {self.url} failed: {exc!r}") from exc
        if response.status_code != 200:
            raise KeysUnavailable(f"GET {self.url} answered {response.status_code}")
        if len(response.content) > MAX_JWKS_BYTES:
            raise KeysUnavailable(f"GET {self.url} answered {len(response.content)} bytes")
        try:
            verifier = parse_jwks(response.content, f"GET {self.url}")
        except ValueError as exc:
            # A broken answer is the approval service's fault, and fixable: retry later.
            raise KeysUnavailable(str(exc)) from exc
        log.info("decision keys fetched from %s: %s", self.url, ", ".join(verifier.keys))
        return verifier

    def jwks(self) -> dict[str, Any] | None:
        """The keys currently trusted, for diagnostics (None before the first fetch)."""
        verifier = self.pinned or self._cached
        return verifier.jwks() if verifier is not None else None
