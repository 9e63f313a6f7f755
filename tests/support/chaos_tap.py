"""Everything that crosses the chaos run's topics, as the test saw it.

A plain consumer with no group (so no rebalances), every partition assigned, reading
from the beginning; it rides out broker restarts like any aiokafka client. The checks
afterwards work from these records: which events exist, how often, with which ids.
"""

import asyncio
import contextlib
import json
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

BIG = 16 * 1024 * 1024


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: str | None
    size: int
    body: dict[str, Any] | None  # parsed JSON object, None when it is not one


@dataclass
class Tap:
    records: dict[str, list[Record]] = field(default_factory=lambda: defaultdict(list))
    listeners: list[Callable[[Record], None]] = field(default_factory=list)

    def on(self, listener: Callable[[Record], None]) -> None:
        self.listeners.append(listener)

    def of(self, topic: str) -> list[Record]:
        return list(self.records.get(topic, []))

    def add(self, record: Record) -> None:
        self.records[record.topic].append(record)
        for listener in self.listeners:
            listener(record)


def _parse(raw: bytes | None) -> dict[str, Any] | None:
    if raw is None or len(raw) > 1024 * 1024:
        return None
    try:
        body = json.loads(raw)
    except ValueError:
        return None
    return body if isinstance(body, dict) else None


@contextlib.asynccontextmanager
async def tapping(
    kafka: dict[str, Any], topics: list[str], *, partitions: int
) -> AsyncIterator[Tap]:
    """`kafka`: the client's connection arguments (PrivateInfra.client())."""
    tap = Tap()
    consumer = AIOKafkaConsumer(
        **kafka,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=20,
        fetch_max_bytes=4 * BIG,
        max_partition_fetch_bytes=BIG,
    )
    await consumer.start()
    assigned = [TopicPartition(t, p) for t in topics for p in range(partitions)]
    consumer.assign(assigned)
    await consumer.seek_to_beginning(*assigned)

    async def pump() -> None:
        async for message in consumer:
            raw = message.value or b""
            tap.add(
                Record(
                    topic=message.topic,
                    partition=message.partition,
                    offset=message.offset,
                    key=message.key.decode(errors="replace") if message.key else None,
                    size=len(raw),
                    body=_parse(raw),
                )
            )

    task = asyncio.create_task(pump())
    try:
        yield tap
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        await consumer.stop()


async def caught_up(kafka: dict[str, Any], tap: Tap, topics: list[str], *, partitions: int) -> bool:
    """True once the tap holds every record up to each partition's current end."""
    consumer = AIOKafkaConsumer(**kafka, enable_auto_commit=False)
    await consumer.start()
    try:
        wanted = [TopicPartition(t, p) for t in topics for p in range(partitions)]
        ends = await consumer.end_offsets(wanted)
    finally:
        await consumer.stop()
    seen: dict[tuple[str, int], int] = {}
    for topic in topics:
        for record in tap.of(topic):
            key = (record.topic, record.partition)
            seen[key] = max(seen.get(key, -1), record.offset)
    return all(seen.get((tp.topic, tp.partition), -1) >= end - 1 for tp, end in ends.items())
