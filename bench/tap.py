"""Watch `agent.runs` and note when each run's events arrive in this process.

A plain partition-assigned consumer (no group, so no rebalance wait), reading from
the end with the same short long-poll the services use.
"""

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime

from aiokafka import AIOKafkaConsumer, TopicPartition


@dataclass(frozen=True)
class Seen:
    run_id: str
    type: str
    detail: dict[str, object]
    received: float  # time.perf_counter() in this process
    occurred_at: float  # the producer's wall clock (epoch seconds)


@dataclass
class RunTap:
    """Collects RunEvents by (run_id, type); `wait_for` blocks until one arrives."""

    seen: dict[tuple[str, str], Seen] = field(default_factory=dict)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def record(self, raw: bytes, received: float) -> None:
        try:
            event = json.loads(raw)
            occurred = datetime.fromisoformat(event["occurred_at"]).timestamp()
            key = (str(event["run_id"]), str(event["type"]))
        except (ValueError, KeyError, TypeError):
            return
        self.seen.setdefault(
            key, Seen(key[0], key[1], dict(event.get("detail") or {}), received, occurred)
        )
        self._changed.set()

    async def wait_for(self, run_id: str, type_: str, *, timeout: float) -> Seen:
        deadline = time.monotonic() + timeout
        while (run_id, type_) not in self.seen:
            self._changed.clear()
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no {type_} event for run {run_id} within {timeout}s")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), left)
        return self.seen[(run_id, type_)]


@contextlib.asynccontextmanager
async def tapping(bootstrap: str, topic: str) -> AsyncIterator[RunTap]:
    tap = RunTap()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=5
    )
    await consumer.start()
    try:
        await consumer.topics()  # fresh metadata: the topic was created a moment ago
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            raise RuntimeError(f"topic {topic} does not exist")
        assigned = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(assigned)
        await consumer.seek_to_end(*assigned)
        for tp in assigned:
            await consumer.position(tp)  # resolve the end offsets before anything is sent

        async def pump() -> None:
            async for message in consumer:
                tap.record(message.value or b"", time.perf_counter())

        task = asyncio.create_task(pump())
        try:
            yield tap
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    finally:
        await consumer.stop()
