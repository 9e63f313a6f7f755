"""Malformed messages for every topic a hitl service consumes.

Four kinds per topic, spread over its partitions so that valid traffic queues behind
them everywhere: garbage bytes, JSON of the wrong shape, a well-formed event from a
future `schema_version`, and an event over the 1 MiB limit. Each consuming group must
dead-letter each one with the reason and keep going.

`agent.runs` is not here: no hitl service consumes it (it is the lifecycle feed for
outside readers), so nothing of ours could dead-letter a bad message on it.
"""

import json
import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaProducer
from hitl_shared.topics import Topics

from tests.support.chaos_load import send_to

KINDS = ("garbage", "wrong_schema", "future_version", "huge")
HUGE = 2 * 1024 * 1024  # over the consumers' 1 MiB limit, under the broker's 10 MB
# What the dead letter's `error` must say for each kind.
REASONS = {
    "garbage": "json",
    "wrong_schema": "field required",
    "future_version": "schema_version 99 is newer",
    "huge": "byte limit",
}


@dataclass(frozen=True)
class Injected:
    topic: str
    kind: str
    partition: int
    offset: int
    size: int
    # Ids inside the message that must never show up as real state.
    marker: str


def consumers(topics: Topics) -> dict[str, int]:
    """Consumer groups per topic: each dead-letters every bad message once."""
    return {
        topics.agent_tasks: 1,  # agent
        topics.approval_requested: 2,  # approval, notifier
        topics.approval_decided: 2,  # agent, notifier
        topics.notifications: 1,  # approval (history notes)
    }


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _valid(topic: str, topics: Topics, marker: str, victim: str) -> dict[str, Any]:
    """A well-formed event for `topic`; if a consumer wrongly accepted it, it would show."""
    base: dict[str, Any] = {
        "event_id": str(uuid.uuid4()),
        "schema_version": 1,
        "occurred_at": _now(),
    }
    if topic == topics.agent_tasks:
        # Accepted by mistake, it would move 7 to a chaos account and break its balance.
        return {**base, "task_id": marker, "input": f"Transfer 7 to {victim}", "agent": "banking"}
    if topic == topics.approval_requested:
        later = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
        return {
            **base,
            "correlation_id": marker,
            "run_id": marker,
            "agent": "banking",
            "tool": "transfer",
            "arguments": {"to_account": victim, "amount": 700},
            "reason": "chaos: must be dead-lettered",
            "context": {"user_request": "chaos"},
            "requested_at": _now(),
            "expires_at": later,
        }
    if topic == topics.approval_decided:
        return {
            **base,
            "correlation_id": marker,
            "run_id": marker,
            "decision": "approved",
            "reviewer": "chaos",
            "channel": "api",
            "decided_at": _now(),
        }
    return {
        **base,
        "correlation_id": marker,
        "run_id": marker,
        "channel": "webhook",
        "recipient": "http://chaos.invalid/hook",
        "kind": "requested",
        "status": "sent",
        "attempts": 1,
    }


def message(topic: str, kind: str, topics: Topics, marker: str, victim: str) -> bytes:
    if kind == "garbage":
        return b"\xff\xfe\x00chaos" + random.randbytes(64)
    if kind == "wrong_schema":
        return json.dumps({"hello": "chaos", "marker": marker}).encode()
    body = _valid(topic, topics, marker, victim)
    if kind == "future_version":
        return json.dumps({**body, "schema_version": 99}).encode()
    body["padding"] = "x" * HUGE
    return json.dumps(body).encode()


async def inject(
    producer: AIOKafkaProducer, topics: Topics, *, partitions: int, victim: str, wave: int
) -> list[Injected]:
    """One wave: every kind on every consumed topic, partitions rotating per kind."""
    sent = []
    for topic in consumers(topics):
        for i, kind in enumerate(KINDS):
            marker = f"chaos-bad-{wave}-{kind}-{uuid.uuid4().hex[:8]}"
            raw = message(topic, kind, topics, marker, victim)
            partition = (i + wave) % partitions
            meta = await send_to(producer, topic, raw, key=marker, partition=partition)
            sent.append(Injected(topic, kind, partition, meta.offset, len(raw), marker))
    return sent
