"""The pipeline's bookkeeping against a stand-in consumer (pure logic; Kafka itself in
tests/integration/test_kafka_concurrent_subscriber.py): offsets, counts, chains."""

import asyncio
from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition
from aiokafka.structs import OffsetAndMetadata
from hitl_shared.kafka_pipeline import Pipeline

TP = TopicPartition("t", 0)


@dataclass
class Record:
    offset: int
    key: str
    topic: str = "t"
    partition: int = 0


@dataclass
class Consumer:
    assigned: set[TopicPartition] = field(default_factory=lambda: {TP})
    commits: list[dict[TopicPartition, int]] = field(default_factory=list)
    seeks: list[tuple[TopicPartition, int]] = field(default_factory=list)

    def assignment(self) -> set[TopicPartition]:
        return set(self.assigned)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp, offset))

    async def commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> None:
        self.commits.append({tp: meta.offset for tp, meta in offsets.items()})


def pipeline(
    handle: Any, limit: int = 4, commit_interval: float = 0.0
) -> tuple[Pipeline[Record], Consumer]:
    consumer = Consumer()
    p: Pipeline[Record] = Pipeline(
        name="test",
        limit=limit,
        route=lambda r: (r.key, r),
        handle=handle,
        commit_interval=commit_interval,
    )
    p.attach(consumer)
    return p, consumer


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


async def test_a_record_fetched_again_after_a_rebalance_is_not_dispatched_twice() -> None:
    gate = asyncio.Event()
    seen: list[int] = []

    async def handle(record: Record, _: Any) -> None:
        seen.append(record.offset)
        await gate.wait()

    p, consumer = pipeline(handle)
    p.take([Record(10, "a"), Record(11, "b")])
    await settle()
    await p.assigned({TP})  # given back: go on where it was
    assert consumer.seeks == [(TP, 12)]
    p.take([Record(10, "a"), Record(11, "b"), Record(12, "c")])  # fetched before the seek
    await settle()
    assert sorted(seen) == [10, 11, 12]
    assert p.unfinished == 3
    gate.set()
    await settle()
    assert p.unfinished == 0
    assert p.partitions[TP].ready == 13


async def test_records_of_a_partition_no_longer_assigned_are_dropped() -> None:
    async def handle(record: Record, _: Any) -> None:
        raise AssertionError("not ours")

    p, consumer = pipeline(handle)
    consumer.assigned = set()
    p.take([Record(0, "a")])
    assert p.unfinished == 0
    assert p.partitions == {}


async def test_letting_go_of_a_partition_counts_off_only_what_was_not_finished() -> None:
    slow = asyncio.Event()

    async def handle(record: Record, _: Any) -> None:
        if record.key == "slow":
            await slow.wait()

    p, consumer = pipeline(handle)
    p.take([Record(0, "slow"), Record(1, "a"), Record(2, "b")])
    await settle()
    assert p.unfinished == 1, "1 and 2 finished, behind 0"
    consumer.assigned = set()
    await p.assigned(set())  # the partition went to another member
    assert p.unfinished == 0
    assert not p.full
    assert p.free == p.capacity


async def test_a_cancelled_error_from_inside_the_handler_is_retried_not_the_end_of_the_chain(
    monkeypatch: Any,
) -> None:
    monkeypatch.setattr("hitl_shared.kafka_pipeline.OUTAGE_PAUSE", 0.0)
    tries: list[int] = []

    async def handle(record: Record, _: Any) -> None:
        tries.append(record.offset)
        if len(tries) == 1:
            other: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            other.cancel()
            await other  # something the handler awaited was cancelled, not this task

    p, consumer = pipeline(handle)
    p.take([Record(0, "a"), Record(1, "a")])
    await settle()
    assert tries == [0, 0, 1]
    assert p.unfinished == 0
    await settle()
    await p.close(grace=0.1)
    assert consumer.commits[-1] == {TP: 2}


async def test_commits_never_pass_an_unfinished_record() -> None:
    gate = asyncio.Event()

    async def handle(record: Record, _: Any) -> None:
        if record.offset == 1:
            await gate.wait()

    p, consumer = pipeline(handle)
    p.take([Record(0, "a"), Record(1, "b"), Record(2, "c"), Record(3, "d")])
    await settle()
    assert await p.commit([TP])
    assert consumer.commits[-1] == {TP: 1}
    gate.set()
    await settle()
    assert await p.commit([TP])
    assert consumer.commits[-1] == {TP: 4}
    await p.close(grace=0.1)


async def test_records_finishing_within_the_commit_interval_share_one_commit() -> None:
    async def handle(record: Record, _: Any) -> None:
        return None

    p, consumer = pipeline(handle, commit_interval=0.2)
    p.take([Record(0, "a")])
    await settle()
    assert consumer.commits == [{TP: 1}], "the first finished record is committed at once"
    for offset in range(1, 6):
        p.take([Record(offset, f"k{offset}")])
        await settle()
    assert consumer.commits == [{TP: 1}], "the rest wait for the interval"
    await asyncio.sleep(0.3)
    assert consumer.commits == [{TP: 1}, {TP: 6}], "then go in one commit"
    await p.close(grace=0.1)
