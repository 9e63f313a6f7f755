"""`subscribe_batch` on real Kafka: a handler failure that is not the store's is narrowed
down to the one event that causes it (dead-lettered), the rest of the batch is handled."""

import base64
import json
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from hitl_contracts import NotificationRecorded
from hitl_shared.health import broker_probe
from hitl_shared.kafka import ensure_topics, make_broker, subscribe_batch
from hitl_shared.settings import CommonSettings

from tests.support import leftovers
from tests.support.infra import Infra
from tests.support.wait import eventually

pytestmark = pytest.mark.integration


def note(correlation_id: str) -> bytes:
    return json.dumps(
        {
            "correlation_id": correlation_id,
            "run_id": "r",
            "channel": "webhook",
            "recipient": "http://hooks.test/x",
            "kind": "requested",
            "status": "sent",
            "attempts": 1,
        }
    ).encode()


async def dead_letters(infra: Infra, topic: str) -> list[dict[str, Any]]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=infra.kafka_bootstrap_servers, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        batch = await consumer.getmany(timeout_ms=1000)
        return [json.loads(r.value) for rs in batch.values() for r in rs if r.value]
    finally:
        await consumer.stop()


async def test_one_failing_event_is_dead_lettered_and_the_rest_of_its_batch_handled(
    infra: Infra,
) -> None:
    settings = CommonSettings(
        kafka_bootstrap_servers=infra.kafka_bootstrap_servers,
        hitl_topic_prefix=leftovers.topic_prefix(),
    )
    topic = settings.topics.notifications
    await ensure_topics(settings, [topic], partitions=1)
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap_servers)
    await producer.start()
    try:
        # All on the topic before the consumer starts, so its first fetch is the batch.
        for cid in ["a", "bad", "b", "c"]:
            await producer.send_and_wait(topic, note(cid), key=b"k")
        await producer.send_and_wait(topic, b"garbage", key=b"k")
    finally:
        await producer.stop()

    handled: list[str] = []
    batches: list[int] = []

    async def handler(events: list[NotificationRecorded]) -> None:
        batches.append(len(events))
        if any(e.correlation_id == "bad" for e in events):
            raise ValueError("cannot handle 'bad'")
        handled.extend(e.correlation_id for e in events)

    broker = make_broker(settings, client_id="batch-test")
    subscribe_batch(
        broker,
        settings,
        topic=topic,
        group=settings.group_id("batch-test"),
        model=NotificationRecorded,
        handler=handler,
        healthy=broker_probe(broker),
    )
    await broker.start()
    try:

        async def all_handled() -> bool:
            return sorted(handled) == ["a", "b", "c"]

        await eventually(all_handled, timeout=30, what="the three good events")
        letters = await eventually(
            lambda: _two(infra, f"{topic}.dlq"), timeout=30, what="two dead letters"
        )
    finally:
        await broker.stop()

    assert batches[0] == 4, "the four valid events arrived as one batch"
    assert handled.count("a") == 1
    by_body = {base64.b64decode(x["original_b64"]): x["error"] for x in letters}
    assert "cannot handle 'bad'" in by_body[note("bad")]
    assert "invalid NotificationRecorded" in by_body[b"garbage"]


async def _two(infra: Infra, topic: str) -> list[dict[str, Any]] | None:
    letters = await dead_letters(infra, topic)
    return letters if len(letters) >= 2 else None
