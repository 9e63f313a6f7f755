"""Decision signatures: verify what the service decided, with the keys it publishes.

`GET /v1/keys` answers a JWK set when the service signs decisions. Verification is on
by default (`verify="auto"`): as soon as that endpoint answers, every outcome must
carry a valid signature by one of its keys, or `BadDecisionSignature` is raised. A
service without the endpoint (404) signs nothing, so there is nothing to check, and
the endpoint is asked again after a while (a service upgrade turns checking on).
`verify="require"` refuses to work without keys; `verify="off"` skips checking, for
those who accept that risk explicitly. Any other failure to read the keys is an
error, never a silent "unverified".
"""

import time
from typing import Any, Literal

import httpx
from hitl_contracts import ApprovalDecided
from hitl_contracts.signing import BadSignature, DecisionVerifier

from hitl_client.errors import BadDecisionSignature, HitlError, error_for

VerifyMode = Literal["auto", "require", "off"]

KEYS_PATH = "/v1/keys"
# An unknown key id (a rotation) refetches, at most this often.
REFETCH_SECONDS = 10.0
# A service without keys is asked again after this long.
RECHECK_ABSENT_SECONDS = 300.0


class Keys:
    """What is known of the service's keys; the clients fetch, this decides (no I/O)."""

    def __init__(self, mode: VerifyMode = "auto", jwks: dict[str, Any] | None = None) -> None:
        if mode not in ("auto", "require", "off"):
            raise ValueError(f"verify must be 'auto', 'require' or 'off', not {mode!r}")
        self.mode = mode
        self.verifier: DecisionVerifier | None = None
        self.published: bool | None = None
        self.fetched_at = float("-inf")
        if jwks is not None:
            # Keys given up front (pinned): never fetched, never replaced.
            self.verifier = DecisionVerifier.from_jwks(jwks)
            self.published = True
            self.fetched_at = float("inf")

    def needs_fetch(self, decided: ApprovalDecided) -> bool:
        if self.mode == "off":
            return False
        age = time.monotonic() - self.fetched_at
        if self.published is None:
            return True
        if not self.published:
            return age > RECHECK_ABSENT_SECONDS
        unknown = self.verifier is None or not self.verifier.knows(decided.key_id)
        return unknown and age > REFETCH_SECONDS

    def load(self, response: httpx.Response) -> None:
        self.fetched_at = time.monotonic()
        if response.status_code == 404:
            self.published = False
            return
        if response.status_code != 200:
            raise error_for(response)
        try:
            self.verifier = DecisionVerifier.from_jwks(response.json())
        except ValueError as exc:
            raise HitlError(f"{KEYS_PATH} answered something that is not a JWK set: {exc}") from exc
        self.published = True

    def check(self, decided: ApprovalDecided) -> None:
        """Raise BadDecisionSignature unless the decision verifies (or checking is off)."""
        if self.mode == "off":
            return
        if not self.published or self.verifier is None:
            if self.mode == "require":
                raise BadDecisionSignature(
                    f"the service publishes no keys at {KEYS_PATH}, and verify='require'"
                )
            return
        try:
            self.verifier.verify(decided)
        except BadSignature as exc:
            raise BadDecisionSignature(
                f"decision of approval {decided.correlation_id} refused: {exc}"
            ) from exc
