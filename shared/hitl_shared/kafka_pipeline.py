"""A consumer that keeps fetching while it handles: no batch waits for its slowest message.

FastStream's batch loop handles a fetched batch and only then fetches the next, so one
long message (an agent run that calls the model thirty times) held back every message
fetched after it, on every partition of the worker, and a decision that arrived while
a batch was being handled waited for the whole batch. Here the loop only dispatches:

- Each record goes to the chain of its key on its partition, handled in fetch order;
  chains of different keys run at once, at most `limit` handlers at a time.
- Offsets are committed in order per partition: up to the first record not finished,
  never past it, at most once per `commit_interval` (a commit is a request to the
  broker and a write there, not worth one per record). A crash redelivers every record not
  finished (and those finished since the last commit: handlers are idempotent), never
  skips one.
- Bounded: past `capacity` records fetched and not finished, the partitions are paused
  and the loop keeps polling (so the group does not take it for dead) until there is
  room; a paused partition drops what it prefetched and fetches it again on resume.
- Rebalances: when one starts, what finished is committed; handlers go on. When it
  ends, partitions given back go on where they were (the consumer seeks past what was
  dispatched), those given to another member are let go of: their queued records are
  dropped and their running handlers cancelled (as a crash would stop them); the new
  owner reads them again from the committed offset.
- Stop: queued records dropped, running handlers get `REVOKE_GRACE` seconds, the rest
  are cancelled, what finished is committed, all before the consumer leaves.
"""

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeAlias, TypeVar

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata

log = logging.getLogger(__name__)

T = TypeVar("T")

# How long running handlers may go on at stop before they are cancelled.
REVOKE_GRACE = 3.0
# After a handler gave up on an outage: wait, then handle the same record again.
OUTAGE_PAUSE = 1.0

Record: TypeAlias = ConsumerRecord[Any, Any]


@dataclass
class _Partition:
    """Offsets fetched from one partition and not committed yet, in fetch order."""

    fetched: deque[int] = field(default_factory=deque)
    finished: set[int] = field(default_factory=set)
    # The offset to commit next (one past the last record finished in order).
    ready: int | None = None
    committed: int | None = None

    # The offset to fetch next (one past the last record dispatched).
    next: int | None = None

    def add(self, offset: int) -> None:
        self.fetched.append(offset)
        self.next = offset + 1

    def finish(self, offset: int) -> None:
        self.finished.add(offset)
        while self.fetched and self.fetched[0] in self.finished:
            done = self.fetched.popleft()
            self.finished.discard(done)
            self.ready = done + 1


@dataclass
class _Item(Generic[T]):
    event: T
    record: Record


class Pipeline(Generic[T]):
    """Dispatch, bounded concurrency and in-order commits for one subscriber."""

    def __init__(
        self,
        *,
        name: str,
        limit: int,
        route: Callable[[Record], tuple[str, T] | None],
        handle: Callable[[T, Record], Awaitable[None]],
        capacity: int | None = None,
        commit_interval: float = 0.0,
    ) -> None:
        self.name = name
        # At most one commit per interval while records finish (what finishes meanwhile
        # goes with the next): a crash redelivers at most that much more, never skips.
        self.commit_interval = commit_interval
        self.route = route
        self.handle = handle
        self.gate = asyncio.Semaphore(limit)
        self.capacity = capacity or limit * 4
        self.consumer: AIOKafkaConsumer | None = None
        self.partitions: dict[TopicPartition, _Partition] = {}
        self.queues: dict[tuple[TopicPartition, str], deque[_Item[T]]] = {}
        self.chains: dict[tuple[TopicPartition, str], asyncio.Task[None]] = {}
        self.unfinished = 0
        self.room = asyncio.Event()
        self.room.set()
        self.commit_wanted = asyncio.Event()
        self.committer: asyncio.Task[None] | None = None
        self.closing = False

    # The fetch side (the subscriber's loop)

    @property
    def full(self) -> bool:
        return self.unfinished >= self.capacity

    @property
    def free(self) -> int:
        return max(self.capacity - self.unfinished, 0)

    def attach(self, consumer: AIOKafkaConsumer) -> None:
        if self.consumer is not consumer:
            # A consumer of its own: a (re)started subscriber, nothing carried over.
            self.consumer = consumer
            self.closing = False
        if self.closing:
            return
        if self.committer is None or self.committer.done():
            self.committer = asyncio.create_task(self._commit_loop(), name=f"commit {self.name}")

    async def wait_for_room(self, timeout: float) -> None:
        self.room.clear()
        if not self.full:
            self.room.set()
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.room.wait(), timeout)

    def take(self, records: Iterable[Record]) -> None:
        """Records just returned by `getmany`, dispatched before anything else runs (no
        await in between: no rebalance can slip between the fetch and this)."""
        if self.closing or self.consumer is None:
            return  # not registered: never committed, read again after the restart
        assigned = self.consumer.assignment()
        for record in records:
            tp = TopicPartition(record.topic, record.partition)
            partition = self.partitions.get(tp)
            if tp not in assigned or (
                partition is not None
                and partition.next is not None
                and record.offset < partition.next
            ):
                # Not ours any more, or fetched again from the committed offset after a
                # rebalance gave the partition back: already dispatched here.
                continue
            self._dispatch(tp, record)

    def _dispatch(self, tp: TopicPartition, record: Record) -> None:
        self.partitions.setdefault(tp, _Partition()).add(record.offset)
        self.unfinished += 1
        routed = self.route(record)
        if routed is None:
            self._finished(tp, record.offset)
            return
        key, event = routed
        chain = (tp, key)
        queue = self.queues.get(chain)
        if queue is None:
            queue = self.queues[chain] = deque()
            self.chains[chain] = asyncio.create_task(self._drain(chain, queue))
        queue.append(_Item(event, record))

    # The handling side

    async def _drain(self, chain: tuple[TopicPartition, str], queue: deque[_Item[T]]) -> None:
        tp = chain[0]
        try:
            while queue:
                item = queue[0]
                async with self.gate:
                    await self._handle(item.event, item.record)
                queue.popleft()
                self._finished(tp, item.record.offset)
        finally:
            if self.queues.get(chain) is queue:
                del self.queues[chain]
                del self.chains[chain]

    async def _handle(self, event: T, record: Record) -> None:
        while True:
            try:
                await self.handle(event, record)
                return
            except asyncio.CancelledError as exc:
                task = asyncio.current_task()
                if task is None or task.cancelling():
                    raise  # this chain is being cancelled (partition let go of, stop)
                failure: BaseException = exc  # something the handler awaited was cancelled
            except Exception as exc:
                failure = exc
            # An outage outlasted the handler's own retries: the record stays unfinished
            # (not committed) and is handled again here, in its turn.
            log.error(
                "%s: %s[%s]@%s not handled (%r); trying again in %.0f s",
                self.name,
                record.topic,
                record.partition,
                record.offset,
                failure,
                OUTAGE_PAUSE,
            )
            await asyncio.sleep(OUTAGE_PAUSE)

    def _finished(self, tp: TopicPartition, offset: int) -> None:
        partition = self.partitions.get(tp)
        if partition is None:
            return  # the partition was taken away meanwhile: its new owner has it
        partition.finish(offset)
        self.unfinished -= 1
        if not self.full:
            self.room.set()
        self.commit_wanted.set()

    # Commits

    async def _commit_loop(self) -> None:
        while True:
            await self.commit_wanted.wait()
            self.commit_wanted.clear()
            try:
                done = await self.commit(self.partitions)
            except Exception:
                log.exception("%s: commit failed", self.name)
                done = False
            if not done:
                # Tried again even if no record finishes meanwhile (an idle partition's
                # last offsets); what is never committed is only read again.
                await asyncio.sleep(OUTAGE_PAUSE)
                self.commit_wanted.set()
            elif self.commit_interval > 0:
                await asyncio.sleep(self.commit_interval)

    async def commit(self, tps: Iterable[TopicPartition]) -> bool:
        """Commit what finished on `tps` (those still assigned); False if it failed."""
        consumer = self.consumer
        if consumer is None:
            return True
        assigned = consumer.assignment()
        offsets = {}
        for tp in tps:
            partition = self.partitions.get(tp)
            if (
                tp in assigned
                and partition is not None
                and partition.ready not in (None, partition.committed)
            ):
                assert partition.ready is not None
                offsets[tp] = (partition, partition.ready)
        if not offsets:
            return True
        try:
            await consumer.commit(
                {tp: OffsetAndMetadata(offset, "") for tp, (_, offset) in offsets.items()}
            )
        except KafkaError as exc:
            # A rebalance under way (or the partitions already gone): those records are
            # read again by whoever owns them next; handlers are idempotent.
            log.warning("%s: commit of %s failed: %r", self.name, sorted(offsets), exc)
            return False
        for partition, offset in offsets.values():
            partition.committed = offset
        return True

    # Rebalances, and stop

    async def revoked(self, tps: Iterable[TopicPartition]) -> None:
        """A rebalance starts (every partition is revoked, Kafka's eager protocol):
        commit what finished while the partitions are still ours; handlers go on."""
        await self.commit(tps)

    async def assigned(self, tps: Iterable[TopicPartition]) -> None:
        """A rebalance ended: partitions not given back are let go of (their handlers
        cancelled: the new owner reads their records again from the committed offset);
        those given back go on where they were, not from the committed offset."""
        kept = set(tps)
        # Seek first (nothing awaited before it): no fetch from the committed offset.
        for tp in kept:
            partition = self.partitions.get(tp)
            if partition is not None and partition.next is not None and self.consumer is not None:
                self.consumer.seek(tp, partition.next)
        await self.release([tp for tp in self.partitions if tp not in kept], grace=0, commit=False)

    async def release(
        self, tps: Iterable[TopicPartition], *, grace: float = REVOKE_GRACE, commit: bool = True
    ) -> None:
        """Let go of partitions: drop their queued records, give the running ones `grace`
        seconds, cancel the rest, commit what finished (if still ours), forget them."""
        gone = set(tps)
        if not gone:
            return
        running: list[asyncio.Task[None]] = []
        for (tp, key), queue in list(self.queues.items()):
            if tp not in gone:
                continue
            # Keep only the record being handled (the head); the rest are not started.
            while len(queue) > 1:
                queue.pop()
            running.append(self.chains[(tp, key)])
        if running:
            _, late = await asyncio.wait(running, timeout=grace) if grace > 0 else ((), running)
            for task in late:
                task.cancel()
            if late:
                log.warning(
                    "%s: %d handler(s) still running on partitions let go of; cancelled "
                    "(their records are read again by the next owner)",
                    self.name,
                    len(late),
                )
                await asyncio.gather(*late, return_exceptions=True)
        if commit:
            await self.commit(gone)
        for tp in gone:
            partition = self.partitions.pop(tp, None)
            if partition is not None:
                # Those finished behind an unfinished one were counted off already.
                self.unfinished -= len(partition.fetched) - len(partition.finished)
        if not self.full:
            self.room.set()

    async def close(self, *, grace: float = REVOKE_GRACE) -> None:
        self.closing = True
        await self.release(list(self.partitions), grace=grace)
        if self.committer is not None:
            self.committer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.committer
            self.committer = None


class Releaser(ConsumerRebalanceListener):  # type: ignore[misc]
    """Rebalance listener: the pipeline lets go of partitions before they move."""

    def __init__(self, pipeline: "Pipeline[Any]") -> None:
        self.pipeline = pipeline

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self.pipeline.revoked(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.pipeline.assigned(assigned)
