"""`publish_in_order` on real Kafka: records of one key arrive in the order given, all
acknowledged when it returns; a record that cannot be sent fails the call."""

import contextlib
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.errors import MessageSizeTooLargeError
from faststream.kafka import KafkaBroker
from hitl_contracts import RunEvent, RunEventType
from hitl_shared.kafka import Outgoing, ensure_topics, make_broker, publish_in_order
from hitl_shared.settings import CommonSettings

from tests.support import leftovers
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


@contextlib.asynccontextmanager
async def started_broker(infra: Infra, partitions: int) -> AsyncIterator[tuple[KafkaBroker, str]]:
    """A started broker and a fresh `agent.runs` topic of `partitions` partitions."""
    settings = CommonSettings(
        kafka_bootstrap_servers=infra.kafka_bootstrap_servers,
        hitl_topic_prefix=leftovers.topic_prefix(),
    )
    topic = settings.topics.agent_runs
    await ensure_topics(settings, [topic], partitions=partitions)
    broker = make_broker(settings, client_id="order-test")
    await broker.start()
    try:
        yield broker, topic
    finally:
        await broker.stop()


async def test_records_of_one_run_arrive_in_order_and_acknowledged(infra: Infra) -> None:
    runs = [f"run-{n}" for n in range(4)]
    async with started_broker(infra, partitions=3) as (broker, topic):
        batch = [Outgoing(topic, event(r, seq), r) for seq in range(1, 26) for r in runs]
        await publish_in_order(broker, batch)

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
    async with started_broker(infra, partitions=1) as (broker, topic):
        huge = event("r", 2).model_copy(update={"detail": {"blob": "x" * 2_000_000}})
        with pytest.raises(MessageSizeTooLargeError):
            await publish_in_order(
                broker, [Outgoing(topic, event("r", 1), "r"), Outgoing(topic, huge, "r")]
            )
