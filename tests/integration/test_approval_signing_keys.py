"""The development signing key on the real store: replicas starting together agree on one."""

import asyncio

import pytest
from hitl_approval.adapters.signing_keys import development_signer, load_keyring
from hitl_approval.settings import ApprovalSettings
from pymongo.asynchronous.database import AsyncDatabase

pytestmark = pytest.mark.integration


async def test_replicas_starting_at_once_sign_with_one_development_key(
    db: AsyncDatabase[dict[str, object]],
) -> None:
    signers = await asyncio.gather(*(development_signer(db) for _ in range(5)))
    assert len({s.key_id for s in signers}) == 1
    # A later start reads the same key back; the ring publishes it first.
    ring = await load_keyring(ApprovalSettings(), db, None)
    assert ring.signer.key_id == signers[0].key_id
    assert ring.jwks()["keys"][0]["kid"] == signers[0].key_id
    assert await db["signing_keys"].count_documents({}) == 1
