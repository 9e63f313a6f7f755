"""`subscribe` on real Kafka with a real store probe: whose fault a handler failure is
comes from the store's health, not from the exception's class.

The failure used is the one issue 10 saw: a document that makes the store drop the
connection raises `AutoReconnect`, exactly what a store outage raises.
"""

import base64
import json
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from hitl_contracts import NotificationRecorded
from hitl_shared.health import Probe, mongo_probe
from hitl_shared.kafka import HANDLER_ATTEMPTS, ensure_topics, make_broker, subscribe
from hitl_shared.settings import CommonSettings
from pymongo import AsyncMongoClient
from pymongo.errors import AutoReconnect

from tests.integration.test_kafka_batch_subscriber import dead_letters, note
from tests.support import leftovers
from tests.support.http_server import free_port
from tests.support.infra import Infra
from tests.support.wait import eventually

pytestmark = pytest.mark.integration


async def run_consumer(
    infra: Infra, healthy: Probe, fails: set[str], attempts: dict[str, int]
) -> tuple[CommonSettings, Any]:
    settings = CommonSettings(
        kafka_bootstrap_servers=infra.kafka_bootstrap_servers,
        hitl_topic_prefix=leftovers.topic_prefix(),
    )
    topic = settings.topics.notifications
    await ensure_topics(settings, [topic], partitions=1)

    async def handler(event: NotificationRecorded) -> None:
        attempts[event.correlation_id] = attempts.get(event.correlation_id, 0) + 1
        if event.correlation_id in fails:
            raise AutoReconnect("connection closed")

    broker = make_broker(settings, client_id="poison-test")
    subscribe(
        broker,
        settings,
        topic=topic,
        group=settings.group_id("poison-test"),
        model=NotificationRecorded,
        handler=handler,
        healthy=healthy,
    )
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap_servers)
    await producer.start()
    try:
        for cid in ["bad", "good"]:
            await producer.send_and_wait(topic, note(cid), key=b"same-partition")
    finally:
        await producer.stop()
    await broker.start()
    return settings, broker


async def test_a_message_that_breaks_a_healthy_store_is_dead_lettered(infra: Infra) -> None:
    store: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongodb_url)
    attempts: dict[str, int] = {}
    settings, broker = await run_consumer(infra, mongo_probe(store), {"bad"}, attempts)
    try:
        await eventually(lambda: _true(attempts.get("good") == 1), timeout=15, what="good")
    finally:
        await broker.stop()
        await store.close()
    assert attempts["bad"] == HANDLER_ATTEMPTS, "a few tries, then dead-lettered"
    (letter,) = await dead_letters(infra, f"{settings.topics.notifications}.dlq")
    assert "AutoReconnect" in letter["error"]
    assert json.loads(base64.b64decode(letter["original_b64"]))["correlation_id"] == "bad"


async def test_the_same_failure_while_the_store_is_down_is_retried_not_dead_lettered(
    infra: Infra,
) -> None:
    # A real client of a store that is not there: the probe fails like an outage.
    gone: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        f"mongodb://127.0.0.1:{free_port()}/", serverSelectionTimeoutMS=300
    )
    store: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongodb_url)
    probes = {"now": mongo_probe(gone)}
    fails = {"bad"}
    attempts: dict[str, int] = {}

    async def healthy() -> bool:
        return await probes["now"]()

    settings, broker = await run_consumer(infra, healthy, fails, attempts)
    try:
        # Past one delivery's tries: the message was nacked and read again.
        await eventually(
            lambda: _true(attempts.get("bad", 0) > HANDLER_ATTEMPTS + 1),
            timeout=30,
            what="redeliveries during the outage",
        )
        assert "good" not in attempts, "the partition waits for the store"
        # The store is back and the message handles fine now.
        fails.clear()
        probes["now"] = mongo_probe(store)
        await eventually(lambda: _true(attempts.get("good") == 1), timeout=30, what="good")
    finally:
        await broker.stop()
        await store.close()
        await gone.close()
    assert await dead_letters(infra, f"{settings.topics.notifications}.dlq") == []


async def _true(value: bool) -> bool:
    return value
