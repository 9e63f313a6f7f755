"""Decision keys: pinned or fetched from the approval service, refetched on rotation only."""

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi import FastAPI, Response
from hitl_contracts import ApprovalDecided, Channel, Decision
from hitl_contracts.signing import BadSignature, DecisionSigner
from hitl_shared.decision_keys import DecisionKeys, KeysUnavailable
from hitl_shared.http_limits import Unavailable

from tests.support.http_server import free_port, serve


def decided(**overrides: object) -> ApprovalDecided:
    fields: dict[str, object] = {
        "correlation_id": "c-1",
        "run_id": "r-1",
        "agent": "banking",
        "tool": "transfer",
        "tool_call_id": "call_1",
        "decision": Decision.APPROVED,
        "arguments": {"to_account": "alice", "amount": 400},
        "reviewer": "ann",
        "channel": Channel.API,
        "decided_at": datetime(2026, 12, 2, 18, 0, tzinfo=UTC),
        **overrides,
    }
    return ApprovalDecided.model_validate(fields)


@dataclass
class KeyServer:
    """A stand-in approval service publishing a JWK set it can rotate or break."""

    signers: list[DecisionSigner]
    status: int = 200
    hits: list[str] = field(default_factory=list)

    def app(self) -> FastAPI:
        api = FastAPI()

        @api.get("/v1/keys")
        async def keys() -> Response:
            self.hits.append("GET")
            body = json.dumps({"keys": [s.public_jwk() for s in self.signers]})
            return Response(body, status_code=self.status, media_type="application/json")

        return api


@pytest.fixture
def server() -> Iterator[tuple[KeyServer, str]]:
    keys = KeyServer([DecisionSigner.generate()])
    with serve(keys.app()) as url:
        yield keys, url


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_decision_signed_by_the_published_key_verifies(
    server: tuple[KeyServer, str],
) -> None:
    keys, url = server
    trusted = DecisionKeys(url=url)
    await trusted.verify(keys.signers[0].sign(decided()))
    await trusted.verify(keys.signers[0].sign(decided(correlation_id="c-2")))
    assert keys.hits == ["GET"], "the key set is cached, not fetched per decision"


async def test_unsigned_altered_and_foreign_decisions_are_refused(
    server: tuple[KeyServer, str],
) -> None:
    keys, url = server
    trusted = DecisionKeys(url=url)
    with pytest.raises(BadSignature, match="not signed"):
        await trusted.verify(decided())
    signed = keys.signers[0].sign(decided())
    with pytest.raises(BadSignature, match="altered or forged"):
        await trusted.verify(
            signed.model_copy(update={"arguments": {"to_account": "bob", "amount": 4000}})
        )
    with pytest.raises(BadSignature, match="unknown key"):
        await trusted.verify(DecisionSigner.generate().sign(decided()))


async def test_a_rotated_key_is_fetched_once_and_made_up_keys_do_not_flood(
    server: tuple[KeyServer, str],
) -> None:
    keys, url = server
    clock = Clock()
    trusted = DecisionKeys(url=url, clock=clock, refetch_seconds=10)
    await trusted.verify(keys.signers[0].sign(decided()))
    rotated = DecisionSigner.generate()
    keys.signers.insert(0, rotated)
    clock.now += 11
    await trusted.verify(rotated.sign(decided()))
    assert len(keys.hits) == 2, "an unknown key id triggers one refetch"
    for _ in range(5):
        with pytest.raises(BadSignature, match="unknown key"):
            await trusted.verify(DecisionSigner.generate().sign(decided()))
    assert len(keys.hits) == 2, "no refetch within 10 s of the last one"
    clock.now += 11
    with pytest.raises(BadSignature, match="unknown key"):
        await trusted.verify(DecisionSigner.generate().sign(decided()))
    assert len(keys.hits) == 3


async def test_keys_that_cannot_be_fetched_are_unavailable_never_valid(
    server: tuple[KeyServer, str],
) -> None:
    keys, url = server
    keys.status = 503
    trusted = DecisionKeys(url=url)
    with pytest.raises(KeysUnavailable) as caught:
        await trusted.verify(keys.signers[0].sign(decided()))
    assert isinstance(caught.value, Unavailable)
    assert isinstance(caught.value, ConnectionError), "retried by consumers, not dead-lettered"
    assert "503" in str(caught.value)
    keys.status = 200
    await trusted.verify(keys.signers[0].sign(decided()))


async def test_nothing_listening_is_unavailable_within_the_timeout() -> None:
    trusted = DecisionKeys(url=f"http://127.0.0.1:{free_port()}", timeout_seconds=0.5)
    with pytest.raises(KeysUnavailable):
        await trusted.verify(DecisionSigner.generate().sign(decided()))


async def test_pinned_keys_from_env_and_file_are_used_without_fetching(tmp_path: Path) -> None:
    inline, filed = DecisionSigner.generate(), DecisionSigner.generate()
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({"keys": [filed.public_jwk()]}))
    trusted = DecisionKeys.configured(
        # Nothing listens here: pinned keys never fetch.
        approval_url=f"http://127.0.0.1:{free_port()}",
        inline=json.dumps({"keys": [inline.public_jwk()]}),
        file=str(path),
        source="AGENT_DECISION_KEYS",
    )
    await trusted.verify(inline.sign(decided()))
    await trusted.verify(filed.sign(decided()))
    with pytest.raises(BadSignature, match="unknown key"):
        await trusted.verify(DecisionSigner.generate().sign(decided()))


def test_a_broken_pinned_key_set_stops_start_up_naming_the_setting() -> None:
    with pytest.raises(ValueError, match="AGENT_DECISION_KEYS"):
        DecisionKeys.configured(
            approval_url="", inline='{"keys": []}', source="AGENT_DECISION_KEYS"
        )
    with pytest.raises(ValueError, match="AGENT_DECISION_KEYS"):
        DecisionKeys.configured(
            approval_url="", inline='{"keys": [{"kty": "RSA"}]}', source="AGENT_DECISION_KEYS"
        )
