"""`subscribe_concurrent` on real Kafka: different keys at once (bounded), one key's
messages in order, and a message that breaks its handler dead-lettered on its own;
fetching goes on while a long message is handled, commits never pass an unfinished
record, a restart or a rebalance hands unfinished records on."""

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from faststream.kafka import KafkaBroker
from hitl_contracts import NotificationRecorded
from hitl_shared.health import broker_probe
from hitl_shared.kafka import ensure_topics, make_broker, subscribe_concurrent
from hitl_shared.settings import CommonSettings

from tests.integration.test_kafka_batch_subscriber import dead_letters
from tests.support import leftovers
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
        hitl_topic_prefix=leftovers.topic_prefix(),
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


# The pipeline (`hitl_shared.kafka_pipeline`): fetching goes on while handlers run.


async def _setup(infra: Infra, partitions: int) -> tuple[CommonSettings, str, str]:
    settings = CommonSettings(
        kafka_bootstrap_servers=infra.kafka_bootstrap_servers,
        hitl_topic_prefix=leftovers.topic_prefix(),
    )
    topic = settings.topics.notifications
    await ensure_topics(settings, [topic], partitions=partitions)
    return settings, topic, settings.group_id("pipeline-test")


async def _send(infra: Infra, topic: str, notes: list[tuple[str, str]], partition: int = 0) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap_servers)
    await producer.start()
    try:
        for run, cid in notes:
            await producer.send_and_wait(
                topic, note(run, cid), key=run.encode(), partition=partition
            )
    finally:
        await producer.stop()


async def _committed(infra: Infra, group: str, topic: str) -> dict[int, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap_servers)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items() if tp.topic == topic}


def _consumer(
    settings: CommonSettings,
    topic: str,
    group: str,
    handler: Callable[[NotificationRecorded], Awaitable[None]],
    limit: int = 4,
) -> KafkaBroker:
    broker = make_broker(settings, client_id="pipeline-test")
    subscribe_concurrent(
        broker,
        settings,
        topic=topic,
        group=group,
        model=NotificationRecorded,
        handler=handler,
        key=lambda event: event.run_id,
        limit=limit,
        healthy=broker_probe(broker),
    )
    return broker


async def _consume_until(
    broker: KafkaBroker, probe: Callable[[], Awaitable[bool]], what: str
) -> None:
    await broker.start()
    try:
        await eventually(probe, timeout=30, what=what)
    finally:
        await broker.stop()


def _recorder(settings: CommonSettings, topic: str, group: str) -> tuple[KafkaBroker, list[str]]:
    """A consumer that notes each event's correlation id, in the order handled."""
    seen: list[str] = []

    async def record(event: NotificationRecorded) -> None:
        seen.append(event.correlation_id)

    return _consumer(settings, topic, group, record), seen


async def test_a_long_message_holds_back_only_its_own_run_and_commits_stop_before_it(
    infra: Infra,
) -> None:
    settings, topic, group = await _setup(infra, partitions=1)
    release = asyncio.Event()
    handled: list[str] = []

    async def handler(event: NotificationRecorded) -> None:
        if event.correlation_id == "slow-1":
            await release.wait()
        handled.append(event.correlation_id)

    broker = _consumer(settings, topic, group, handler)
    await broker.start()
    try:
        await _send(infra, topic, [("slow", "slow-1")])
        await asyncio.sleep(1.0)  # fetched and being handled on its own
        await _send(infra, topic, [("a", "a-1"), ("b", "b-1"), ("slow", "slow-2"), ("a", "a-2")])

        async def others_done() -> bool:
            return sorted(handled) == ["a-1", "a-2", "b-1"]

        await eventually(others_done, timeout=30, what="the other runs' messages")
        # One run's messages in order; runs a and b interleave as their tasks are run.
        assert handled.index("a-1") < handled.index("a-2")
        await asyncio.sleep(1.0)
        # Offsets 1, 2, 4 are done, 0 (slow-1) is not: nothing past it is committed.
        assert (await _committed(infra, group, topic)).get(0, 0) in (-1, 0)
        assert "slow-2" not in handled, "one run's messages wait for each other"

        release.set()

        async def all_committed() -> bool:
            return (await _committed(infra, group, topic)).get(0) == 5

        await eventually(all_committed, timeout=30, what="offset 5 committed")
        assert handled.index("slow-1") < handled.index("slow-2")
    finally:
        release.set()
        await broker.stop()


async def test_a_restart_reads_again_what_was_not_finished_and_not_what_was(
    infra: Infra,
) -> None:
    settings, topic, group = await _setup(infra, partitions=1)
    first: list[str] = []
    cancelled: list[str] = []

    async def stuck(event: NotificationRecorded) -> None:
        if event.run_id == "x":
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancelled.append(event.correlation_id)
                raise
        first.append(event.correlation_id)

    await _send(infra, topic, [("y", "y-1"), ("x", "x-1"), ("y", "y-2")])

    async def ys() -> bool:
        return first == ["y-1", "y-2"]

    # Stopped with x-1 still running: cancelled after its grace.
    await _consume_until(_consumer(settings, topic, group, stuck), ys, "y's messages")
    assert cancelled == ["x-1"]
    assert (await _committed(infra, group, topic)) == {0: 1}, "up to x-1, not past it"

    broker, second = _recorder(settings, topic, group)

    async def again() -> bool:
        return second == ["x-1", "y-2"]

    await _consume_until(broker, again, "x-1 (and y-2 after it) read again")
    assert (await _committed(infra, group, topic)) == {0: 3}


async def test_a_partition_taken_away_cancels_its_handler_and_its_new_owner_handles_it(
    infra: Infra,
) -> None:
    settings, topic, group = await _setup(infra, partitions=2)
    await _send(infra, topic, [("p0", "p0-1")], partition=0)
    await _send(infra, topic, [("p1", "p1-1")], partition=1)
    started: list[str] = []
    cancelled: list[str] = []

    async def stuck(event: NotificationRecorded) -> None:
        started.append(event.correlation_id)
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.append(event.correlation_id)
            raise

    taken: list[str] = []

    async def quick(event: NotificationRecorded) -> None:
        taken.append(event.correlation_id)

    one = _consumer(settings, topic, group, stuck)
    two = _consumer(settings, topic, group, quick)
    await one.start()
    try:

        async def both_started() -> bool:
            return sorted(started) == ["p0-1", "p1-1"]

        await eventually(both_started, timeout=30, what="both records in the first consumer")
        await two.start()  # the group rebalances: one partition moves to `two`

        async def moved() -> bool:
            return len(taken) == 1 and len(cancelled) == 1

        await eventually(moved, timeout=60, what="one partition handed over")
        assert taken == cancelled, "the record cancelled in one is the one handled in two"
        (subscriber,) = one.subscribers
        pipeline = getattr(subscriber, "pipeline")  # noqa: B009 (set on the instance)
        assert pipeline.unfinished == 1, "only the kept partition's record is left"
        # The partition `one` kept: its handler went on through the rebalance.
        assert sorted(started) == ["p0-1", "p1-1"], "nothing read twice by the one that kept it"
    finally:
        await two.stop()
        await one.stop()


async def test_many_runs_through_a_small_limit_each_once_never_more_at_once(
    infra: Infra,
) -> None:
    settings, topic, group = await _setup(infra, partitions=2)
    notes = [(f"r{i % 40}", f"m{i}") for i in range(200)]
    for partition in (0, 1):  # a run's messages on one partition, runs on both
        await _send(
            infra, topic, [(r, c) for r, c in notes if int(r[1:]) % 2 == partition], partition
        )
    seen: list[str] = []
    running = peak = 0

    async def handler(event: NotificationRecorded) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.005)
        running -= 1
        seen.append(event.correlation_id)

    # Limit 2: at most 8 records fetched and not finished; the rest wait in Kafka.
    broker = _consumer(settings, topic, group, handler, limit=2)
    await broker.start()
    try:

        async def done() -> bool:
            return len(seen) == 200

        await eventually(done, timeout=60, what="200 messages")
    finally:
        await broker.stop()
    assert sorted(seen) == sorted(cid for _, cid in notes), "each exactly once"
    assert peak == 2
    for run in {run for run, _ in notes}:
        mine = [cid for r, cid in notes if r == run]
        assert [cid for cid in seen if cid in mine] == mine, f"{run} in its order"
    assert (await _committed(infra, group, topic)) == {0: 100, 1: 100}


async def test_records_that_cannot_be_handled_do_not_let_the_commit_skip_anything(
    infra: Infra,
) -> None:
    """A body that does not parse (dead-lettered), headers that are not text or empty:
    the records after them are handled, and the offsets committed cover all of them."""
    settings, topic, group = await _setup(infra, partitions=1)
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(topic, note("a", "a-1"), key=b"a")
        await producer.send_and_wait(topic, b"{not json", key=b"a")
        await producer.send_and_wait(
            topic,
            note("a", "a-2"),
            key=b"a",
            headers=[("traceparent", b"\xff\xfe"), ("empty", None)],
        )
        await producer.send_and_wait(topic, note("b", "b-1"), key=b"b")
    finally:
        await producer.stop()
    broker, handled = _recorder(settings, topic, group)
    await broker.start()
    try:

        async def all_committed() -> bool:
            return (await _committed(infra, group, topic)).get(0) == 4

        await eventually(all_committed, timeout=30, what="offset 4 committed")
        letters = await eventually(
            lambda: _one(infra, f"{topic}.dlq"), timeout=30, what="a dead letter"
        )
    finally:
        await broker.stop()
    assert sorted(handled) == ["a-1", "a-2", "b-1"]
    (letter,) = letters
    assert base64.b64decode(letter["original_b64"]) == b"{not json"
    assert letter["offset"] == 1
