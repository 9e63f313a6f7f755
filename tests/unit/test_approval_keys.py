"""The approval service's signing key settings: what is published, and what stops start-up."""

import json
from pathlib import Path

import pytest
from hitl_approval.adapters.signing_keys import KeyRing, configured_signer, retired_keys
from hitl_approval.settings import ApprovalSettings
from hitl_contracts.signing import DecisionSigner, private_key_pem


def test_the_key_set_lists_the_current_key_first_then_retired_ones(tmp_path: Path) -> None:
    current, old = DecisionSigner.generate(), DecisionSigner.generate()
    pem = tmp_path / "key.pem"
    pem.write_bytes(private_key_pem(current.key))
    retired = tmp_path / "retired.json"
    # The current key listed as retired too (a rotation half done) is published once.
    retired.write_text(json.dumps({"keys": [old.public_jwk(), current.public_jwk()]}))
    settings = ApprovalSettings(
        approval_signing_key_file=str(pem), approval_retired_keys_file=str(retired)
    )
    signer = configured_signer(settings)
    assert signer is not None
    assert signer.key_id == current.key_id
    ring = KeyRing(signer, retired_keys(settings))
    assert [k["kid"] for k in ring.jwks()["keys"]] == [current.key_id, old.key_id]
    assert all(set(k) == {"kty", "crv", "x", "kid", "use", "alg"} for k in ring.jwks()["keys"])


def test_no_key_configured_means_the_development_key() -> None:
    assert configured_signer(ApprovalSettings()) is None


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"approval_signing_key": "not a pem"}, "APPROVAL_SIGNING_KEY: not an Ed25519"),
        (
            {
                "approval_signing_key": "-----BEGIN PRIVATE KEY-----\nAAAA\n"
                "-----END PRIVATE KEY-----\n"
            },
            "APPROVAL_SIGNING_KEY",
        ),
    ],
)
def test_a_bad_signing_key_stops_start_up_with_the_reason(
    fields: dict[str, str], fragment: str
) -> None:
    with pytest.raises(ValueError, match=fragment):
        configured_signer(ApprovalSettings(**fields))  # type: ignore[arg-type]


def test_a_bad_retired_key_file_stops_start_up(tmp_path: Path) -> None:
    path = tmp_path / "retired.json"
    path.write_text(json.dumps({"keys": [{"kty": "RSA", "n": "x"}]}))
    with pytest.raises(ValueError, match="APPROVAL_RETIRED_KEYS_FILE"):
        retired_keys(ApprovalSettings(approval_retired_keys_file=str(path)))
