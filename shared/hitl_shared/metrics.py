"""Prometheus pieces every service shares: consumer lag, dead letters, the /metrics answer.

Each service keeps its own registry (no global state shared with libraries or
tests); these helpers register on the registry they are given.
"""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, TopicPartition
from faststream.kafka import KafkaBroker
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    disable_created_metrics,
)
from prometheus_client import generate_latest as _generate_latest
from starlette.requests import Request
from starlette.responses import Response

# `*_created` series double the output and no dashboard here reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]

# A position not known yet (just assigned) is skipped rather than waited for.
POSITION_WAIT_SECONDS = 0.2


def dead_letter_counter(registry: CollectorRegistry) -> Counter:
    return Counter(
        "hitl_dead_letters",
        "Messages this service sent to a dead-letter topic, by source topic.",
        ["topic"],
        registry=registry,
    )


class ConsumerLag:
    """Messages not yet consumed, per group, topic and partition this replica owns.

    Read from the consumers themselves at scrape time: the highwater mark of the
    last fetch minus the position, so a scrape costs no broker round trip.
    """

    def __init__(self, broker: KafkaBroker, registry: CollectorRegistry) -> None:
        self.broker = broker
        self.gauge = Gauge(
            "hitl_consumer_lag",
            "Messages behind the partition's end (highwater - position), per partition "
            "assigned to this replica.",
            ["group", "topic", "partition"],
            registry=registry,
        )

    async def refresh(self) -> None:
        self.gauge.clear()  # partitions move between replicas on every rebalance
        for subscriber in self.broker.subscribers:
            consumer: AIOKafkaConsumer | None = getattr(subscriber, "consumer", None)
            group = getattr(subscriber, "group_id", None) or ""
            if consumer is None:
                continue
            for tp in consumer.assignment():
                lag = await _lag(consumer, tp)
                if lag is not None:
                    self.gauge.labels(group=group, topic=tp.topic, partition=str(tp.partition)).set(
                        lag
                    )


async def _lag(consumer: AIOKafkaConsumer, tp: TopicPartition) -> int | None:
    # Assignment can change between listing it and asking about one partition.
    with contextlib.suppress(Exception):
        highwater = consumer.highwater(tp)
        if highwater is None:
            return None
        position = await asyncio.wait_for(consumer.position(tp), POSITION_WAIT_SECONDS)
        return max(int(highwater) - int(position), 0)
    return None


def render(registry: CollectorRegistry) -> bytes:
    return _generate_latest(registry)


def endpoint(
    registry: CollectorRegistry, *refresh: Callable[[], Awaitable[None]]
) -> Callable[[Request], Awaitable[Response]]:
    """A `GET /metrics` handler: refresh scrape-time values, then render the registry."""

    async def metrics(request: Request) -> Response:
        for step in refresh:
            await step()
        return Response(render(registry), media_type=CONTENT_TYPE_LATEST)

    return metrics
