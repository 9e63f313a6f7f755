"""The key that signs every decision, and the public keys consumers verify with.

The key comes from APPROVAL_SIGNING_KEY_FILE or APPROVAL_SIGNING_KEY (Ed25519, PEM
PKCS#8). Without one, outside production only, the replicas share a development key
kept in the store: the first replica to start inserts one under a fixed `_id`, and
every replica reads back whichever insert won, so they all sign with the same key.
Retired keys (APPROVAL_RETIRED_KEYS_FILE, a JWK set) stay published after a rotation
so that decisions signed before it still verify.
"""

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from hitl_contracts.signing import (
    DecisionSigner,
    DecisionVerifier,
    jwk_of,
    load_private_key,
    private_key_pem,
)
from hitl_shared.mongo import Document, insert_once
from pymongo.asynchronous.database import AsyncDatabase

from hitl_approval.settings import ApprovalSettings

log = logging.getLogger(__name__)

COLLECTION = "signing_keys"
DEVELOPMENT_KEY = "development"

Jwk = dict[str, str]


@dataclass(frozen=True)
class KeyRing:
    """The current signer and the retired public keys still published."""

    signer: DecisionSigner
    retired: tuple[Jwk, ...] = ()

    def jwks(self) -> dict[str, list[Jwk]]:
        """The JWK set consumers verify with: the current key first."""
        current = self.signer.public_jwk()
        return {"keys": [current, *(k for k in self.retired if k["kid"] != current["kid"])]}


def configured_signer(settings: ApprovalSettings) -> DecisionSigner | None:
    """The key from settings; None when none is set. A bad key stops start-up with the reason."""
    if settings.approval_signing_key_file:
        source = f"APPROVAL_SIGNING_KEY_FILE {settings.approval_signing_key_file}"
        pem = Path(settings.approval_signing_key_file).read_bytes()
    elif settings.approval_signing_key:
        source, pem = "APPROVAL_SIGNING_KEY", settings.approval_signing_key.encode()
    else:
        return None
    try:
        return DecisionSigner(load_private_key(pem))
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{source}: not an Ed25519 private key in PEM (PKCS#8): {exc}") from exc


def retired_keys(settings: ApprovalSettings) -> tuple[Jwk, ...]:
    path = settings.approval_retired_keys_file
    if not path:
        return ()
    try:
        verifier = DecisionVerifier.from_jwks(json.loads(Path(path).read_text()))
    except (ValueError, TypeError, AttributeError) as exc:
        raise ValueError(
            f"APPROVAL_RETIRED_KEYS_FILE {path}: not an Ed25519 JWK set: {exc}"
        ) from exc
    return tuple(jwk_of(key) for key in verifier.keys.values())


async def development_signer(db: AsyncDatabase[Document]) -> DecisionSigner:
    """The development key every replica on this store shares (created by the first)."""
    candidate = DecisionSigner.generate()
    doc: Document = {
        "_id": DEVELOPMENT_KEY,
        "pem": private_key_pem(candidate.key).decode(),
        "created_at": datetime.now(UTC),
    }
    await insert_once(db, COLLECTION, doc)
    stored = await db[COLLECTION].find_one({"_id": DEVELOPMENT_KEY})
    if stored is None:
        raise RuntimeError(
            "the development signing key vanished from the store right after its insert"
        )
    return DecisionSigner(load_private_key(str(stored["pem"]).encode()))


async def load_keyring(
    settings: ApprovalSettings, db: AsyncDatabase[Document], signer: DecisionSigner | None
) -> KeyRing:
    """`signer` from settings, else (not in production) the shared development key."""
    if signer is None:
        if settings.hitl_env == "production":
            raise RuntimeError("production needs APPROVAL_SIGNING_KEY_FILE or APPROVAL_SIGNING_KEY")
        signer = await development_signer(db)
        log.warning(
            "signing decisions with the DEVELOPMENT key %s kept in the store (collection %s); "
            "set APPROVAL_SIGNING_KEY_FILE for anything real",
            signer.key_id,
            COLLECTION,
        )
    else:
        log.info("signing decisions with key %s", signer.key_id)
    return KeyRing(signer, retired_keys(settings))
