"""Helpers shared by the approval service's e2e modules (this module holds no tests).

A stack of real service processes with reviewers and policies of the test's
choosing, a producer that can publish anything onto the stack's topics (valid
events, broken bytes, 5 MB), and a reader that reads a topic to its end.
"""

import asyncio
import base64
import contextlib
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from hitl_approval.entrypoints.rest.auth import hash_token
from hitl_contracts import ApprovalDecided, ApprovalRequested
from hitl_contracts.signing import DecisionSigner
from hitl_shared.topics import Topics, dlq
from pydantic import BaseModel
from pymongo import MongoClient

from tests.support.infra import Infra
from tests.support.stack import Stack
from tests.support.wait import eventually

BIG = 10 * 1024 * 1024
PARTITIONS = 3  # every topic of a test stack is created with these (create_topics)

# name -> (token, roles, groups)
PEOPLE: dict[str, tuple[str, list[str], list[str]]] = {
    "ann": ("ann-token", ["reviewer"], ["finance"]),
    "bob": ("bob-token", ["reviewer"], ["finance"]),
    "cyd": ("cyd-token", ["reviewer"], []),
    "sam": ("sam-token", ["reviewer"], ["finance"]),
    "vic": ("vic-token", [], []),  # may look, may not decide
    "ada": ("ada-token", ["admin"], []),
    "agent-service": ("agent-service-token", ["agent"], []),
}


def reviewers_json(people: dict[str, tuple[str, list[str], list[str]]]) -> str:
    return json.dumps(
        [
            {"name": name, "token_sha256": hash_token(token), "roles": roles, "groups": groups}
            for name, (token, roles, groups) in people.items()
        ]
    )


def token(name: str) -> str:
    return PEOPLE[name][0]


def now() -> datetime:
    return datetime.now(UTC)


async def create_topics(infra: Infra, prefix: str, *, big: bool) -> None:
    """Create the stack's topics up front; `big` lets approval.requested hold 10 MB records.

    A topic-level `max.message.bytes` works on the running shared broker, whose own
    default (1 MB) only changes on restart.
    """
    topics = Topics(prefix)
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap_servers)
    await admin.start()
    try:
        names = {*topics.all(), *(dlq(t) for t in topics.all())}
        new = [
            NewTopic(
                name,
                num_partitions=PARTITIONS,
                replication_factor=1,
                topic_configs={"max.message.bytes": str(BIG)}
                if big and name == topics.approval_requested
                else {},
            )
            for name in sorted(names)
        ]
        await admin.create_topics(new)
    finally:
        await admin.close()


@contextlib.contextmanager
def approval_stack(
    infra: Infra,
    logs: Path,
    *,
    env: dict[str, str] | None = None,
    services: tuple[str, ...] = ("approval",),
    big_requests: bool = False,
) -> Iterator[Stack]:
    stack = Stack(
        infra,
        logs,
        env_extra={
            "APPROVAL_REVIEWERS": reviewers_json(PEOPLE),
            "APPROVAL_SWEEP_INTERVAL_SECONDS": "0.2",
            "APPROVAL_OUTBOX_INTERVAL_SECONDS": "0.5",
            **(env or {}),
        },
    )
    asyncio.run(create_topics(infra, stack.prefix, big=big_requests))
    try:
        for name in services:
            stack.start(name)
        yield stack
    finally:
        stack.close()
        mongo: MongoClient[dict[str, Any]]
        with MongoClient(infra.mongodb_url) as mongo:
            mongo.drop_database(stack.database)
        print(f"service logs: {logs}")


def client(stack: Stack, who: str) -> httpx.AsyncClient:
    return stack.reviewer(token(who))


class Bus:
    """Publishes onto a stack's topics exactly what a test asks, valid or not."""

    def __init__(self, infra: Infra, stack: Stack) -> None:
        self.infra = infra
        self.topics = Topics(stack.prefix)
        self.producer = AIOKafkaProducer(
            bootstrap_servers=infra.kafka_bootstrap_servers,
            max_request_size=BIG,
            acks="all",
        )

    async def __aenter__(self) -> "Bus":
        await self.producer.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.producer.stop()

    async def send(self, topic: str, value: bytes | BaseModel, *, key: str = "k") -> None:
        raw = value if isinstance(value, bytes) else value.model_dump_json().encode()
        await self.producer.send_and_wait(topic, raw, key=key.encode())

    async def request(self, event: ApprovalRequested) -> None:
        await self.send(self.topics.approval_requested, event, key=event.run_id)


async def read_all(infra: Infra, topic: str, *, timeout: float = 30.0) -> list[dict[str, Any]]:
    """Every record on `topic` from the beginning to its current end, as parsed JSON."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=infra.kafka_bootstrap_servers,
        enable_auto_commit=False,
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=BIG,
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            assert time.monotonic() < deadline, f"could not read {topic} to its end in {timeout}s"
            batch = await consumer.getmany(timeout_ms=200)
            for items in batch.values():
                records += [json.loads(r.value) for r in items if r.value is not None]
        return records
    finally:
        await consumer.stop()


async def notifier_refuses_forgeries(
    infra: Infra, bus: "Bus", stack: Stack, real: ApprovalDecided, signer: DecisionSigner
) -> None:
    """Send `real` unsigned, signed by another key, and signed by `signer` then altered;
    wait until the notifier has dead-lettered all three, each with its reason."""
    altered = signer.sign(real).model_copy(update={"reviewer": "ceo"})
    topic = f"{stack.prefix}approval.decided"
    for forged in (real, DecisionSigner.generate().sign(real), altered):
        await bus.send(topic, forged, key=forged.run_id)

    async def letters() -> list[str] | None:
        found = [
            r["error"]
            for r in await read_all(infra, dlq(topic))
            if r["consumer_group"].endswith("hitl-notifier")
            and json.loads(base64.b64decode(r["original_b64"]))["correlation_id"]
            == real.correlation_id
        ]
        return found if len(found) == 3 else None

    errors = " | ".join(await eventually(letters, timeout=60, what="three dead letters"))
    assert "not signed" in errors
    assert "unknown key" in errors
    assert "altered or forged" in errors


async def consumed_all(infra: Infra, group: str, topic: str) -> bool:
    """True once `group` has committed past every record now on `topic`."""
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap_servers)
    consumer = AIOKafkaConsumer(bootstrap_servers=infra.kafka_bootstrap_servers)
    await admin.start()
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        ends = await consumer.end_offsets(partitions)
        committed = await admin.list_consumer_group_offsets(group, partitions=partitions)
        return all(
            tp in committed and committed[tp].offset >= end for tp, end in ends.items() if end
        )
    finally:
        await consumer.stop()
        await admin.close()


async def outbox_drained(stack: Stack) -> None:
    """Wait until no stored event awaits publishing, so none can be published after a count."""
    from pymongo import AsyncMongoClient

    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stack.infra.mongodb_url)
    try:
        events = mongo[stack.database]["approval_events"]

        async def empty() -> bool:
            return await events.count_documents({"published": False}) == 0

        await eventually(empty, timeout=30, what="the outbox to drain")
    finally:
        await mongo.close()
