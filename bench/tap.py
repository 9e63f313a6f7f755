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

from aiokafka import AIOKafkaConsumer


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

    # Every event of a kind, in arrival order: a run may execute a tool before it pauses
    # (a balance check) and the approved one after the decision.
    seen: dict[tuple[str, str], list[Seen]] = field(default_factory=dict)
    # Per (run_id, type): who waits for an event received at or after a time. Each
    # event wakes only its own waiters: with hundreds of decisions outstanding, one
    # shared wake-up per event cost the benchmark client most of a core, taken from
    # the two the system under test runs on.
    _waiting: dict[tuple[str, str], list[tuple[float, "asyncio.Future[Seen]"]]] = field(
        default_factory=dict
    )

    def record(self, raw: bytes, received: float) -> None:
        try:
            event = json.loads(raw)
            occurred = datetime.fromisoformat(event["occurred_at"]).timestamp()
            key = (str(event["run_id"]), str(event["type"]))
        except (ValueError, KeyError, TypeError):
            return
        seen = Seen(key[0], key[1], dict(event.get("detail") or {}), received, occurred)
        self.seen.setdefault(key, []).append(seen)
        waiting = self._waiting.pop(key, [])
        still = []
        for after, waiter in waiting:
            if waiter.done():
                continue
            if received >= after:
                waiter.set_result(seen)
            else:
                still.append((after, waiter))
        if still:
            self._waiting[key] = still

    def _first(self, run_id: str, type_: str, after: float) -> Seen | None:
        return next((s for s in self.seen.get((run_id, type_), ()) if s.received >= after), None)

    async def wait_for(
        self, run_id: str, type_: str, *, timeout: float, after: float = 0.0
    ) -> Seen:
        """The first such event received at or after `after` (perf_counter)."""
        found = self._first(run_id, type_, after)
        if found is not None:
            return found
        waiter: asyncio.Future[Seen] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault((run_id, type_), []).append((after, waiter))
        try:
            return await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            raise TimeoutError(f"no {type_} event for run {run_id} within {timeout}s") from None


@contextlib.asynccontextmanager
async def tapping(bootstrap: str, topic: str) -> AsyncIterator[RunTap]:
    tap = RunTap()
    # No group: every partition is assigned at once, reading from the end.
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="latest",
        # A fetch returns as soon as records arrive; this only bounds an idle poll.
        fetch_max_wait_ms=100,
    )
    await consumer.start()
    try:
        deadline = time.monotonic() + 30
        while not consumer.assignment():
            if time.monotonic() > deadline:
                raise RuntimeError(f"no partitions of {topic} assigned within 30 s")
            await asyncio.sleep(0.05)
        for tp in consumer.assignment():
            await consumer.position(tp)  # fix the start offsets before anything is sent

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
