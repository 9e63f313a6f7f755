"""`GET /v1/keys`: the public keys that verify this service's decisions (a JWK set)."""

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from hitl_approval.adapters.signing_keys import KeyRing

router = APIRouter(tags=["keys"])

# Consumers cache the set this long; a rotation publishes the new key at least this
# long before signing with it (see README "Security model").
MAX_AGE_SECONDS = 300


class PublicKey(BaseModel):
    kty: str = Field(description="Key type: always `OKP`.", examples=["OKP"])
    crv: str = Field(description="Curve: always `Ed25519`.", examples=["Ed25519"])
    x: str = Field(description="The public key, base64url without padding.")
    kid: str = Field(description="Key id (RFC 7638 thumbprint); decisions name it in `key_id`.")
    use: str = Field(default="sig", examples=["sig"])
    alg: str = Field(default="EdDSA", examples=["EdDSA"])


class KeySet(BaseModel):
    keys: list[PublicKey] = Field(
        description="The current signing key first, then retired keys still accepted."
    )


@router.get(
    "/v1/keys",
    response_model=KeySet,
    summary="Public keys that verify approval.decided signatures (JWK set, no auth)",
    responses={
        200: {
            "headers": {
                "Cache-Control": {
                    "description": f"max-age={MAX_AGE_SECONDS}",
                    "schema": {"type": "string"},
                }
            }
        }
    },
)
async def keys(request: Request, response: Response) -> KeySet:
    """Every `approval.decided` carries `key_id` and an Ed25519 `signature` over its
    canonical form (see `hitl_contracts.signing`); verify with the key of that id.
    An unknown `key_id`: fetch this set again (a rotation), at most every few seconds."""
    ring: KeyRing = request.app.state.keyring
    response.headers["Cache-Control"] = f"public, max-age={MAX_AGE_SECONDS}"
    return KeySet.model_validate(ring.jwks())
