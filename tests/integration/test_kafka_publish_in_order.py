"""`publish_in_order` on real Kafka: records of one key arrive in the order given, all
acknowledged when it returns; a record that cannot be sent fails the call."""

import json
import uuid
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import MessageSizeTooLargeError
from hitl_contracts import RunEvent, RunEventType
from hitl_shared.kafka import Outgoing, ensure_topics, make_broker, publish_in_order
from hitl_shared.settings import CommonSettings

from tests.support.infra import Infra

pytestmark = pytest.mark.integration


def event(run_id: str, seq: int) -> RunEvent:
    return RunEvent(
        run_id=run_id,
        task_id=run_id,
        seq=seq,
        type=RunEventType.MODEL_REPLIED,
        occurred_at=datetime.now(UTC),
    )


async def test_records_of_one_run_arrive_in_order_and_acknowledged(infra: Infra) -> None:
    settings = CommonSettings(
        kafka_bootstrap_servers=infra.kafka_bootstrap_servers,
        hitl_topic_prefix=f"t{uuid.uuid4().hex[:8]}.",
    )
    topic = settings.topics.agent_runs
    await ensure_topics(settings, [topic], partitions=3)
    broker = make_broker(settings, client_id="order-test")
    await broker.start()
    runs = [f"run-{n}" for n in range(4)]
    try:
        batch = [Outgoing(topic, event(r, seq), r) for seq in range(1, 26) for r in runs]
        await publish_in_order(broker, batch)
    finally:
        await broker.stop()

    # Acknowledged on return: a consumer started now finds every record.
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=infra.kafka_bootstrap_servers, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        seen: dict[str, list[int]] = {r: [] for r in runs}
        for _ in range(20):
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for record in records:
                    body = json.loads(record.value or b"{}")
                    seen[body["run_id"]].append(body["seq"])
            if sum(map(len, seen.values())) == len(batch):
                break
    finally:
        await consumer.stop()
    assert seen == {r: list(range(1, 26)) for r in runs}


async def test_a_record_that_cannot_be_sent_fails_the_call(infra: Infra) -> None:
    settings = CommonSettings(
        kafka_bootstrap_servers=infra.kafka_bootstrap_servers,
        hitl_topic_prefix=f"t{uuid.uuid4().hex[:8]}.",
    )
    topic = settings.topics.agent_runs
    await ensure_topics(settings, [topic], partitions=1)
    broker = make_broker(settings, client_id="order-fail-test")
    await broker.start()
    try:
        huge = event("r", 2).model_copy(update={"detail": {"blob": "x" * 2_000_000}})
        with pytest.raises(MessageSizeTooLargeError):
            await publish_in_order(
                broker, [Outgoing(topic, event("r", 1), "r"), Outgoing(topic, huge, "r")]
            )
    finally:
        await broker.stop()
