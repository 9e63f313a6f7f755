"""`subscribe_concurrent` on real Kafka: different keys at once (bounded), one key's
messages in order, and a message that breaks its handler dead-lettered on its own."""

import asyncio
import base64
import json
import uuid
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from hitl_contracts import NotificationRecorded
from hitl_shared.health import broker_probe
from hitl_shared.kafka import ensure_topics, make_broker, subscribe_concurrent
from hitl_shared.settings import CommonSettings

from tests.integration.test_kafka_batch_subscriber import dead_letters
from tests.support.infra import Infra
from tests.support.wait import eventually

pytestmark = pytest.mark.integration


def note(run_id: str, correlation_id: str) -> bytes:
    return json.dumps(
        {
            "correlation_id": correlation_id,
            "run_id": run_id,
            "channel": "webhook",
            "recipient": "http://hooks.test/x",
            "kind": "requested",
            "status": "sent",
            "attempts": 1,
        }
    ).encode()


async def test_runs_proceed_concurrently_in_order_each_and_a_broken_one_alone_is_dead_lettered(
    infra: Infra,
) -> None:
    settings = CommonSettings(
        kafka_bootstrap_servers=infra.kafka_bootstrap_servers,
        hitl_topic_prefix=f"t{uuid.uuid4().hex[:8]}.",
    )
    topic = settings.topics.notifications
    await ensure_topics(settings, [topic], partitions=2)
    runs = [f"r{i}" for i in range(6)]
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap_servers)
    await producer.start()
    try:
        for step in range(3):
            for run in runs:
                cid = "bad" if (run, step) == ("r2", 1) else f"{run}-{step}"
                await producer.send_and_wait(topic, note(run, cid), key=run.encode())
    finally:
        await producer.stop()

    handled: dict[str, list[str]] = {run: [] for run in runs}
    running = peak = 0

    async def handler(event: NotificationRecorded) -> None:
        nonlocal running, peak
        if event.correlation_id == "bad":
            raise ValueError("cannot handle 'bad'")
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        running -= 1
        handled[event.run_id].append(event.correlation_id)

    broker = make_broker(settings, client_id="concurrent-test")
    subscribe_concurrent(
        broker,
        settings,
        topic=topic,
        group=settings.group_id("concurrent-test"),
        model=NotificationRecorded,
        handler=handler,
        key=lambda event: event.run_id,
        limit=3,
        healthy=broker_probe(broker),
    )
    await broker.start()
    try:

        async def all_handled() -> bool:
            return sum(map(len, handled.values())) == 17

        await eventually(all_handled, timeout=60, what="the 17 good events")
        letters = await eventually(
            lambda: _one(infra, f"{topic}.dlq"), timeout=30, what="a dead letter"
        )
    finally:
        await broker.stop()

    for run in runs:
        expected = [f"{run}-{s}" for s in range(3) if (run, s) != ("r2", 1)]
        assert handled[run] == expected, "one run's messages in their order"
    assert 1 < peak <= 3, "runs at once, no more than the limit"
    (letter,) = letters
    assert base64.b64decode(letter["original_b64"]) == note("r2", "bad")
    assert "cannot handle 'bad'" in letter["error"]


async def _one(infra: Infra, topic: str) -> list[dict[str, Any]] | None:
    letters = await dead_letters(infra, topic)
    return letters or None
