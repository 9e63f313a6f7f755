"""Malformed events never stop the approval service: each lands in the DLQ with its reason."""

import base64
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from tests.factories import approval_request
from tests.support.approval_e2e import Bus, approval_stack, client, read_all
from tests.support.infra import Infra
from tests.support.stack import Stack
from tests.support.wait import eventually

FIVE_MB = 5 * 1024 * 1024


@pytest.fixture(scope="module")
def stack(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    logs = tmp_path_factory.mktemp("malformed-logs")
    with approval_stack(infra, logs, big_requests=True) as s:
        yield s


@pytest.fixture(scope="module")
async def bus(infra: Infra, stack: Stack) -> AsyncIterator[Bus]:
    async with Bus(infra, stack) as b:
        yield b


def valid_json(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(approval_request().model_dump_json())
    return {**body, **overrides}


def huge() -> bytes:
    body = valid_json()
    body["context"]["user_request"] = "x" * FIVE_MB
    return json.dumps(body).encode()


BROKEN: dict[str, tuple[bytes, str]] = {
    "invalid-json": (b'{"correlation_id": "c1", ', "Invalid JSON"),
    "missing-fields": (json.dumps({"correlation_id": "c1"}).encode(), "run_id: Field required"),
    "wrong-types": (
        json.dumps(valid_json(arguments="all of it", expires_at=12)).encode(),
        "arguments: Input should be an object",
    ),
    "future-version": (
        json.dumps(valid_json(schema_version=99)).encode(),
        "schema_version 99 is newer than the 1 this consumer understands",
    ),
    "five-megabytes": (huge(), "exceeds the 1048576 byte limit"),
}


async def test_each_malformed_request_is_dead_lettered_and_the_next_valid_one_is_stored(
    infra: Infra, bus: Bus, stack: Stack
) -> None:
    run = uuid.uuid4().hex[:8]
    # One partition (same key) for all, so the valid event queues behind every bad one.
    for raw, _ in BROKEN.values():
        await bus.send(bus.topics.approval_requested, raw, key=f"{run}")
    after = approval_request(run_id=run)
    await bus.request(after)

    async with client(stack, "ann") as ann:

        async def stored() -> bool:
            response = await ann.get(f"/v1/approvals/{after.correlation_id}")
            return response.status_code == 200

        await eventually(stored, timeout=60, what="the valid request after the bad ones")

    dlq = f"{bus.topics.approval_requested}.dlq"

    async def all_dead_lettered() -> list[dict[str, Any]] | None:
        letters = [r for r in await read_all(infra, dlq) if r.get("key") == run]
        return letters if len(letters) >= len(BROKEN) else None

    letters = await eventually(all_dead_lettered, timeout=30, what="five dead letters")
    assert len(letters) == len(BROKEN)
    letters.sort(key=lambda letter: letter["offset"])
    for letter, (name, (raw, reason)) in zip(letters, BROKEN.items(), strict=True):
        assert reason in letter["error"], (name, letter["error"])
        assert letter["topic"] == bus.topics.approval_requested
        assert letter["consumer_group"].endswith("hitl-approval")
        assert letter["original_size"] == len(raw)
        kept = base64.b64decode(letter["original_b64"])
        assert raw.startswith(kept), "the original bytes are kept (cut past 256 KiB)"
        assert letter["truncated"] == (name == "five-megabytes")

    async with httpx.AsyncClient(base_url=stack.url("approval")) as anyone:
        assert (await anyone.get("/healthz")).status_code == 200
        metrics = (await anyone.get("/metrics")).text
    assert f'hitl_dead_letters_total{{topic="{bus.topics.approval_requested}"}} 5.0' in metrics


async def test_a_malformed_notification_is_dead_lettered_and_notes_keep_flowing(
    infra: Infra, bus: Bus, stack: Stack
) -> None:
    event = approval_request()
    await bus.request(event)
    await bus.send(bus.topics.notifications, b"\xff\xfe garbage", key=event.run_id)
    note = {
        "correlation_id": event.correlation_id,
        "run_id": event.run_id,
        "channel": "webhook",
        "recipient": "http://hooks.test/x",
        "kind": "requested",
        "status": "sent",
        "attempts": 1,
    }
    await bus.send(bus.topics.notifications, json.dumps(note).encode(), key=event.run_id)
    async with client(stack, "ann") as ann:

        async def noted() -> list[Any] | None:
            response = await ann.get(f"/v1/approvals/{event.correlation_id}/history")
            items = response.json() if response.status_code == 200 else []
            return [h for h in items if h["type"] == "notified"] or None

        (notified,) = await eventually(noted, timeout=30, what="the note after the garbage")
        assert notified["channel"] == "webhook"
    letters = [
        r
        for r in await read_all(infra, f"{bus.topics.notifications}.dlq")
        if r.get("key") == event.run_id
    ]
    assert len(letters) == 1
    assert "invalid NotificationRecorded" in letters[0]["error"]
