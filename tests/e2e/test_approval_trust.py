"""Issue 10 on the approval side, through real processes, Kafka and the store.

Decisions are signed and verify against `GET /v1/keys`; the notifier acts on nothing
else; four-eyes holds however the submitter's name is spelled or when it is missing;
an edit cannot widen the request; a stored approval the service cannot read neither
stops the sweeper nor answers 500; bodies are capped on the bytes read; a frozen store
is a 503 within two seconds.
"""

import asyncio
import base64
import json
import re
import time
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from hitl_approval.adapters.repository import APPROVALS, EVENTS, ApprovalRepository, _entry_doc
from hitl_approval.adapters.storable import dumps, loads
from hitl_approval.domain.model import Approval
from hitl_contracts import ApprovalDecided, Channel, Decision, OnTimeout
from hitl_contracts.signing import DecisionSigner, DecisionVerifier, private_key_pem
from hitl_shared.topics import dlq
from pymongo import AsyncMongoClient

from tests.e2e.test_notifier_channels import slack_signed
from tests.factories import approval_request
from tests.support import recorder
from tests.support.approval_e2e import (
    Bus,
    approval_stack,
    client,
    notifier_refuses_forgeries,
    now,
    read_all,
    token,
)
from tests.support.infra import Infra
from tests.support.stack import Stack
from tests.support.tcp_proxy import TcpProxy, tcp_proxy
from tests.support.wait import eventually

SIGNER = DecisionSigner.generate()
RETIRED = DecisionSigner.generate()
TRANSFER = {"from_account": "checking", "to_account": "alice", "amount": 500}
SCHEMA = {
    "type": "object",
    "properties": {
        "from_account": {"type": "string"},
        "to_account": {"type": "string"},
        "amount": {"type": "number", "exclusiveMinimum": 0, "multipleOf": 0.01},
    },
    "required": ["from_account", "to_account", "amount"],
}
SLACK_SECRET = "test-slack-secret"
EDIT_POLICY = {"locked": ["from_account", "to_account"], "not_above": ["amount"]}


@pytest.fixture(scope="module")
def stack(
    infra: Infra,
    hooks: tuple[recorder.Recorder, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    logs = tmp_path_factory.mktemp("trust-logs")
    retired = logs / "retired.jwks.json"
    retired.write_text(json.dumps({"keys": [RETIRED.public_jwk()]}))
    env = {
        "APPROVAL_SIGNING_KEY": private_key_pem(SIGNER.key).decode(),
        "APPROVAL_RETIRED_KEYS_FILE": str(retired),
        "APPROVAL_FOUR_EYES_UNKNOWN_SUBMITTER": "refuse",
        "APPROVAL_FULL_SWEEP_INTERVAL_SECONDS": "0.5",
        "NOTIFIER_WEBHOOK_URLS": hooks[1] + "/hook",
        "NOTIFIER_REMINDER_FRACTION": "0",
        "APPROVAL_SLACK_SIGNING_SECRET": SLACK_SECRET,
        "APPROVAL_SLACK_TEAM_ID": "T_OURS",
    }
    with approval_stack(infra, logs, env=env, services=("approval", "notifier")) as s:
        yield s


@pytest.fixture(scope="module")
async def bus(infra: Infra, stack: Stack) -> AsyncIterator[Bus]:
    async with Bus(infra, stack) as b:
        yield b


async def pending(bus: Bus, stack: Stack, **overrides: Any) -> str:
    fields: dict[str, Any] = {"requested_by": "sam", **overrides}
    event = approval_request(**fields)
    await bus.request(event)
    async with client(stack, "ann") as ann:

        async def stored() -> bool:
            return (await ann.get(f"/v1/approvals/{event.correlation_id}")).status_code == 200

        await eventually(stored, timeout=30, what="the request stored")
    return event.correlation_id


async def decided_on_kafka(infra: Infra, stack: Stack, cid: str) -> dict[str, Any]:
    topic = f"{stack.prefix}approval.decided"

    async def found() -> dict[str, Any] | None:
        records = [r for r in await read_all(infra, topic) if r["correlation_id"] == cid]
        return records[0] if records else None

    return await eventually(found, timeout=30, what=f"{cid} on {topic}")


async def test_every_decision_is_signed_and_verifies_against_the_published_keys(
    infra: Infra, bus: Bus, stack: Stack
) -> None:
    approved = await pending(bus, stack)
    rejected = await pending(bus, stack)
    expiring = await pending(bus, stack, expires_at=now() + timedelta(seconds=1))
    async with client(stack, "ann") as ann:
        ok = await ann.post(f"/v1/approvals/{approved}/decision", json={"decision": "approve"})
        assert ok.status_code == 200, ok.text
        no = await ann.post(
            f"/v1/approvals/{rejected}/decision", json={"decision": "reject", "comment": "no"}
        )
        assert no.status_code == 200, no.text
    async with httpx.AsyncClient(base_url=stack.url("approval")) as anonymous:
        keys = await anonymous.get("/v1/keys")
    assert keys.status_code == 200
    assert keys.headers["Cache-Control"] == "public, max-age=300"
    published = keys.json()
    assert [k["kid"] for k in published["keys"]] == [SIGNER.key_id, RETIRED.key_id]
    assert all("d" not in k for k in published["keys"]), "never a private key"
    verifier = DecisionVerifier.from_jwks(published)

    # The served decision carries the same signature as the published one.
    assert ok.json()["decision"]["signature"]
    for cid, outcome in [
        (approved, Decision.APPROVED),
        (rejected, Decision.REJECTED),
        (expiring, Decision.EXPIRED),
    ]:
        decided = ApprovalDecided.model_validate(await decided_on_kafka(infra, stack, cid))
        assert decided.decision is outcome
        assert decided.key_id == SIGNER.key_id
        assert (decided.agent, decided.tool) == ("banking", "transfer")
        verifier.verify(decided)
        forged = decided.model_copy(update={"arguments": {**TRANSFER, "to_account": "mallory"}})
        with pytest.raises(ValueError, match="altered or forged"):
            verifier.verify(forged)


async def test_the_notifier_acts_only_on_decisions_the_approval_service_signed(
    infra: Infra, bus: Bus, stack: Stack, hooks: tuple[recorder.Recorder, str]
) -> None:
    cid = await pending(bus, stack)

    async def hooked(kind: str) -> list[recorder.Recorded]:
        return [h for h in hooks[0].matching("correlation_id", cid) if h.json()["kind"] == kind]

    await eventually(lambda: hooked("approval.requested"), what="the request's webhook")
    at = now()
    real = ApprovalDecided(
        correlation_id=cid,
        run_id="r-forged",
        decision=Decision.MODIFIED,
        arguments={**TRANSFER, "to_account": "bob", "amount": 4000},
        reviewer="cfo",
        channel=Channel.API,
        decided_at=at,
        agent="banking",
        tool="transfer",
    )
    await notifier_refuses_forgeries(infra, bus, stack, real, SIGNER)
    assert not await hooked("approval.decided"), "a forged decision reached a webhook"

    # The real decision, signed by the service, is acted on.
    async with client(stack, "ann") as ann:
        response = await ann.post(f"/v1/approvals/{cid}/decision", json={"decision": "reject"})
        assert response.status_code == 200, response.text
    (told,) = await eventually(lambda: hooked("approval.decided"), what="the real decision")
    assert told.json()["decision"]["decision"] == "rejected"


@pytest.mark.parametrize("submitter", ["SAM", " Sam", "\uff53\uff41\uff4d"])
async def test_four_eyes_holds_however_the_submitter_is_spelled(
    bus: Bus, stack: Stack, submitter: str
) -> None:
    cid = await pending(bus, stack, requested_by=submitter)
    async with client(stack, "sam") as sam, client(stack, "bob") as bob:
        own = await sam.post(f"/v1/approvals/{cid}/decision", json={"decision": "approve"})
        assert own.status_code == 403, own.text
        assert "four-eyes" in own.json()["detail"]
        assert (
            await bob.post(f"/v1/approvals/{cid}/decision", json={"decision": "approve"})
        ).status_code == 200


async def test_four_eyes_refuses_approval_when_the_submitter_is_unknown(
    bus: Bus, stack: Stack
) -> None:
    cid = await pending(bus, stack, requested_by="")
    async with client(stack, "bob") as bob:
        approve = await bob.post(f"/v1/approvals/{cid}/decision", json={"decision": "approve"})
        assert approve.status_code == 403
        assert "submitter is unknown" in approve.json()["detail"]
        reject = await bob.post(
            f"/v1/approvals/{cid}/decision", json={"decision": "reject", "comment": "who?"}
        )
        assert reject.status_code == 200
        assert reject.json()["status"] == "rejected"


async def test_an_edit_cannot_widen_what_was_asked(bus: Bus, stack: Stack) -> None:
    cid = await pending(
        bus, stack, arguments=TRANSFER, arguments_schema=SCHEMA, edit_policy=EDIT_POLICY
    )
    async with client(stack, "ann") as ann:
        for edited, reason in [
            ({**TRANSFER, "to_account": "bob", "amount": 300}, "to_account cannot be changed"),
            ({**TRANSFER, "from_account": "alice"}, "from_account cannot be changed"),
            ({**TRANSFER, "amount": 1_000_000}, "lowered but not raised"),
            ({**TRANSFER, "amount": 5, "memo": "x"}, "memo was not in the request"),
            ({**TRANSFER, "amount": 0.001}, "multiple of 0.01"),
        ]:
            response = await ann.post(
                f"/v1/approvals/{cid}/decision", json={"decision": "modify", "arguments": edited}
            )
            assert response.status_code == 422, (edited, response.text)
            assert reason in response.json()["detail"]
        assert (await ann.get(f"/v1/approvals/{cid}")).json()["status"] == "pending"
        narrowed = {**TRANSFER, "amount": 300}
        ok = await ann.post(
            f"/v1/approvals/{cid}/decision", json={"decision": "modify", "arguments": narrowed}
        )
        assert ok.status_code == 200, ok.text
        assert ok.json()["decision"]["arguments"] == narrowed


async def test_a_broken_stored_approval_is_a_409_and_the_sweep_goes_on(
    infra: Infra, bus: Bus, stack: Stack
) -> None:
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongodb_url, tz_aware=True)
    try:
        db = mongo[stack.database]
        repo = ApprovalRepository(db)
        past = now() - timedelta(minutes=2)
        # Written by an older version, before escalations were bounded: 1e15 seconds.
        bad = Approval.requested(
            approval_request(
                requested_at=past,
                expires_at=past + timedelta(seconds=60),
                on_timeout=OnTimeout.ESCALATE,
                escalation_seconds=60,
            )
        )
        doc = _entry_doc(bad.correlation_id, bad.entries[0])
        data = loads(doc["data"])
        data["request"]["escalation_seconds"] = 1e15
        doc["data"] = dumps(data)
        await db[EVENTS].insert_one(doc)
        row = ApprovalRepository._projection(bad)
        row["request_json"] = json.dumps(data["request"])
        await db[APPROVALS].insert_one(row)
        # A good one, due as well, that this replica has never seen (only the full sweep
        # finds it), stored after the bad one.
        good = Approval.requested(
            approval_request(requested_at=past, expires_at=past + timedelta(seconds=60))
        )
        await repo.add(good)

        async with client(stack, "ann") as ann, client(stack, "ada") as ada:

            async def expired() -> bool:
                got = await ann.get(f"/v1/approvals/{good.correlation_id}")
                return bool(got.json()["status"] == "expired")

            await eventually(expired, timeout=15, what="the good approval to expire")
            for response in [
                await ann.get(f"/v1/approvals/{bad.correlation_id}"),
                await ann.post(
                    f"/v1/approvals/{bad.correlation_id}/decision", json={"decision": "approve"}
                ),
                await ada.post(f"/v1/approvals/{bad.correlation_id}/cancel"),
            ]:
                assert response.status_code == 409, response.text
                assert "cannot act on" in response.json()["detail"]
                assert "escalation_seconds" in response.json()["detail"]
            # The listing leaves it out rather than failing for every approval.
            listing = await ann.get("/v1/approvals", params={"limit": 500})
            assert listing.status_code == 200, listing.text
            listed = {item["correlation_id"] for item in listing.json()["items"]}
            assert good.correlation_id in listed
            assert bad.correlation_id not in listed
        aside = await db[APPROVALS].find_one({"_id": bad.correlation_id})
        assert aside is not None
        assert "escalation_seconds" in aside["set_aside"], "set aside for an operator"
    finally:
        await mongo.close()

    # Today such a request is refused at the edge: dead-lettered, nothing stored.
    raw = json.loads(approval_request(on_timeout=OnTimeout.ESCALATE).model_dump_json())
    raw["escalation_seconds"] = 1e15
    await bus.send(bus.topics.approval_requested, json.dumps(raw).encode(), key=raw["run_id"])

    async def refused() -> bool:
        letters = await read_all(infra, dlq(bus.topics.approval_requested))
        return any(
            raw["correlation_id"].encode() in base64.b64decode(r["original_b64"]) for r in letters
        )

    await eventually(refused, timeout=30, what="the overflowing request dead-lettered")


async def test_an_oversized_chunked_body_is_refused_with_413(bus: Bus, stack: Stack) -> None:
    cid = await pending(bus, stack)

    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"decision": "approve", "comment": "'
        for _ in range(40):  # 2.5 MiB in all, announced by no Content-Length
            yield b"x" * (64 * 1024)
        yield b'"}'

    async with client(stack, "ann") as ann:
        for path in [f"/v1/approvals/{cid}/decision", "/v1/integrations/slack/interactions"]:
            response = await ann.post(path, content=chunks())
            assert response.status_code == 413, (path, response.text)
            assert "over 1048576 bytes" in response.json()["detail"]
        assert (await ann.get(f"/v1/approvals/{cid}")).json()["status"] == "pending"


@pytest.fixture
def frozen(infra: Infra, tmp_path: Path) -> Iterator[tuple[TcpProxy, Stack]]:
    """An approval service whose store sits behind a proxy the test can freeze."""
    host, _, port = infra.mongodb_url.removeprefix("mongodb://").strip("/").partition(":")
    with tcp_proxy(host, int(port or 27017)) as proxy:
        env = {"MONGODB_URL": f"mongodb://127.0.0.1:{proxy.port}/"}
        with approval_stack(infra, tmp_path, env=env) as s:
            yield proxy, s


async def test_a_frozen_store_is_a_503_with_retry_after_within_two_seconds(
    infra: Infra, frozen: tuple[TcpProxy, Stack]
) -> None:
    proxy, stack = frozen
    async with Bus(infra, stack) as frozen_bus:
        cid = await pending(frozen_bus, stack)
    await _frozen(proxy, stack, cid)


async def _frozen(proxy: TcpProxy, stack: Stack, cid: str) -> None:
    proxy.pause()
    try:
        async with client(stack, "ann") as ann:
            for call in (
                ann.get(f"/v1/approvals/{cid}"),
                ann.post(f"/v1/approvals/{cid}/decision", json={"decision": "approve"}),
            ):
                started = time.monotonic()
                response = await call
                took = time.monotonic() - started
                assert response.status_code == 503, response.text
                assert took < 2.5, f"answered after {took:.1f}s"
                assert response.headers["Retry-After"].isdigit()
                assert "unavailable" in response.json()["detail"]
    finally:
        proxy.resume()
    async with client(stack, "ann") as ann:

        async def answers() -> str | None:
            response = await ann.get(f"/v1/approvals/{cid}")
            return str(response.json()["status"]) if response.status_code == 200 else None

        status = await eventually(answers, timeout=30, what="the store answering again")
    # The decision's write was sent before the store froze and its answer never came (a
    # 503): it may have landed once the store woke. Then it is decided, and published
    # (the relay looks for writes that went unanswered), never left stored and unsaid.
    assert status in ("pending", "approved")
    if status == "approved":
        decided = await decided_on_kafka(stack.infra, stack, cid)
        assert decided["decision"] == "approved"


async def test_a_slack_click_from_another_workspace_decides_nothing(bus: Bus, stack: Stack) -> None:
    cid = await pending(bus, stack)
    # Signed by Slack (the app's secret), but sent from another workspace the app is in.
    payload = {
        "type": "block_actions",
        "team": {"id": "T_OTHER"},
        "user": {"id": "U_ANN", "username": "ann"},
        "actions": [{"action_id": "hitl_approve", "value": cid}],
    }
    body = urlencode({"payload": json.dumps(payload)}).encode()
    async with httpx.AsyncClient(base_url=stack.url("approval")) as slack:
        response = await slack.post(
            "/v1/integrations/slack/interactions",
            content=body,
            headers=slack_signed(body, secret=SLACK_SECRET),
        )
    assert response.status_code == 403, response.text
    assert "T_OTHER" in response.json()["detail"]
    async with client(stack, "ann") as ann:
        assert (await ann.get(f"/v1/approvals/{cid}")).json()["status"] == "pending"


async def test_a_retry_after_a_crash_gets_its_own_decision_back(bus: Bus, stack: Stack) -> None:
    """The Idempotency-Key travels in the decision's own insert: a crash right after it
    (before the response was remembered) still replays the 200, not a 409."""
    cid = await pending(bus, stack)
    key = {"Idempotency-Key": f"k-{cid}"}
    stack.stop("approval")
    stack.env_extra["APPROVAL_FAULT_CRASH_AFTER_COMMIT"] = "1"
    try:
        # Generous: on a loaded machine the interpreter alone can take most of a minute.
        stack.start("approval", timeout=180)
        process = stack.procs["approval"]
        async with client(stack, "bob") as bob:
            with pytest.raises(httpx.TransportError):
                await bob.post(
                    f"/v1/approvals/{cid}/decision", json={"decision": "approve"}, headers=key
                )
        assert await asyncio.to_thread(process.wait, 30) == 137
    finally:
        del stack.env_extra["APPROVAL_FAULT_CRASH_AFTER_COMMIT"]
    stack.start("approval", timeout=180)
    async with client(stack, "bob") as bob:
        retry = await bob.post(
            f"/v1/approvals/{cid}/decision", json={"decision": "approve"}, headers=key
        )
        assert retry.status_code == 200, retry.text
        assert retry.headers["Idempotent-Replayed"] == "true"
        assert retry.json()["decision"]["reviewer"] == "bob"
        other = await bob.post(
            f"/v1/approvals/{cid}/decision", json={"decision": "reject"}, headers=key
        )
        assert other.status_code == 422, "the same key for another request"
        fresh = await bob.post(f"/v1/approvals/{cid}/decision", json={"decision": "reject"})
        assert fresh.status_code == 409


async def test_signing_out_ends_the_web_session_and_the_cookie_is_not_the_token(
    stack: Stack,
) -> None:
    async with httpx.AsyncClient(base_url=stack.url("approval"), timeout=30) as web:
        form = await web.get("/ui/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf, form.text
        signed = await web.post("/ui/login", data={"token": token("ann"), "csrf": csrf.group(1)})
        assert signed.status_code == 303
        cookie = web.cookies.get("hitl_session", path="/ui")
        assert cookie
        assert token("ann") not in cookie, "the browser never holds the API token"
        queue = await web.get("/ui")
        assert queue.status_code == 200
        logout_csrf = re.search(r'name="csrf" value="([^"]+)"', queue.text)
        assert logout_csrf, queue.text
        out = await web.post("/ui/logout", data={"csrf": logout_csrf.group(1)})
        assert out.status_code == 303
        assert out.headers["location"] == "/ui/login", "signed out (not refused for CSRF)"
    # The old cookie, replayed (stolen before sign-out), no longer signs anyone in.
    async with httpx.AsyncClient(base_url=stack.url("approval"), timeout=30) as thief:
        thief.cookies.set("hitl_session", cookie, path="/ui")
        replay = await thief.get("/ui")
        assert replay.status_code == 303
        assert replay.headers["location"].startswith("/ui/login")
