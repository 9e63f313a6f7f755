"""The outbox: publish a stored entry's event at once, and relay what was left behind.

An entry that must reach Kafka (a decision, an escalated request) is stored with
`published: false` and the replica that stored it, in the same insert as the state
change. That replica publishes it right away and marks it published, not on the
decision's path but with the next relay pass (about once a second, all marks in one
round trip): until then this replica knows it is out, and should it die first, its
leftovers are published again under the same event_id, which consumers already
de-duplicate (they take the relay's copies of an at-least-once outbox). The relay covers the two
ways this can fail: the publish raised (the broker was away: the replica retries it
from memory), or the replica died in between (found by a look through the store at
start-up and whenever a replica stops beating). It never re-publishes an entry whose
live owner may still be publishing it, so a slow publish is not a duplicate event.
Nothing scans the store while all is well: on FerretDB 1.x every scan reads the whole
collection.
"""

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Iterator
from datetime import datetime, timedelta
from typing import Protocol

from hitl_contracts import ApprovalDecided, ApprovalRequested

from hitl_approval.adapters.metrics import ApprovalMetrics
from hitl_approval.domain.model import Approval, Entry
from hitl_approval.service_layer.ports import ApprovalStore, InstanceStore

log = logging.getLogger(__name__)

# Leftovers handled per relay pass; a full page means look again next pass.
LEFTOVER_PAGE = 200
# How long an append whose outcome is unknown (the store did not answer) is looked
# for by `_id` on every relay pass; one that lands later still is published by the
# look through the store at the next start-up of a replica.
DOUBT_WINDOW = timedelta(minutes=5)

OutboxEvent = ApprovalDecided | ApprovalRequested

# Test-only fault hook: called between the store write and the publish.
AfterCommitHook = Callable[[OutboxEvent], Awaitable[None]]


class EventPublisher(Protocol):
    """Publishes a decision on `approval.decided` or an escalated request on `approval.requested`."""

    async def __call__(self, event: OutboxEvent) -> None: ...


class Outbox:
    def __init__(
        self,
        repo: ApprovalStore,
        publish: EventPublisher,
        *,
        instances: InstanceStore,
        metrics: ApprovalMetrics,
        clock: Callable[[], datetime],
        grace: timedelta,
        replica_timeout: timedelta,
        publish_timeout: timedelta = timedelta(seconds=5),
        after_commit: AfterCommitHook | None = None,
    ) -> None:
        self.repo = repo
        self.publish = publish
        self.instances = instances
        self.metrics = metrics
        self.clock = clock
        self.grace = grace
        self.replica_timeout = replica_timeout
        self.publish_timeout = publish_timeout
        self.after_commit = after_commit
        # Entries this process is publishing inline right now: not the relay's.
        self.inflight: set[tuple[str, int]] = set()
        # Entries whose inline publish failed, retried by the relay.
        self.failed: dict[tuple[str, int], Entry] = {}
        # Entries published inline whose `published` mark the relay writes next.
        self.unmarked: set[tuple[str, int]] = set()
        # Appends of publishable entries that raised (a timeout, a lost connection):
        # stored or not, nobody knows yet. Since when.
        self.doubtful: dict[tuple[str, int], datetime] = {}
        # Look through the store once at start-up: a previous incarnation's leftovers.
        self.look_for_leftovers = True

    @contextlib.contextmanager
    def publishing(self, approval: Approval, entry: Entry) -> Iterator[None]:
        """Hold `entry` as in flight from before its insert until its publish is over."""
        key = (approval.correlation_id, entry.seq)
        if entry.publish:
            self.inflight.add(key)
        try:
            yield
        finally:
            self.inflight.discard(key)

    def doubt(self, approval: Approval, entry: Entry) -> None:
        """The append of `entry` raised: it may still be (or have been) stored, and then
        nobody would publish it. The relay looks for it."""
        if entry.publish:
            self.doubtful.setdefault((approval.correlation_id, entry.seq), self.clock())

    async def publish_now(self, approval: Approval, entry: Entry) -> None:
        event = entry.event()
        if event is None:
            return
        if self.after_commit:
            await self.after_commit(event)
        try:
            # A caller waits on this; with the broker away it would wait for minutes.
            # A publish cut short may still go out: the relay's copy is then a
            # duplicate, which consumers of an at-least-once outbox already take.
            await asyncio.wait_for(self.publish(event), self.publish_timeout.total_seconds())
        except Exception:
            # Stored is decided: the relay publishes it once the broker answers.
            log.exception(
                "publishing %s failed; the outbox relay will retry",
                entry.type,
                extra={"correlation_id": approval.correlation_id},
            )
            self.failed[(approval.correlation_id, entry.seq)] = entry
            return
        self.unmarked.add((approval.correlation_id, entry.seq))

    async def mark_published(self) -> int:
        """Write the marks of what was published inline since the last call, in one go."""
        keys = sorted(self.unmarked)
        if keys:
            await self.repo.mark_published_many(keys)
            self.unmarked.difference_update(keys)
        return len(keys)

    async def heartbeat(self) -> int:
        """Tell the other replicas this one is alive (and publishing its own outbox)."""
        await self.instances.beat(self.repo.instance, self.clock())
        return 1

    async def relay(self) -> int:
        """Publish what a failed publish or a dead replica left unpublished: at least once."""
        await self.mark_published()
        relayed = await self._retry_failed()
        relayed += await self._settle_doubtful()
        now = self.clock()
        dead = await self.instances.dead(now, within=self.replica_timeout)
        if not (self.look_for_leftovers or dead):
            return relayed
        alive = await self.instances.alive(now, within=self.replica_timeout)
        leftovers = await self.repo.unpublished(before=now - self.grace, limit=LEFTOVER_PAGE)
        for item in leftovers:
            if item.owner == self.repo.instance:
                key = (item.correlation_id, item.entry.seq)
                if key in self.inflight or key in self.unmarked:
                    continue
            elif item.owner in alive:
                continue  # its owner publishes it, inline or through its own relay
            if await self._relay(item.correlation_id, item.entry):
                relayed += 1
                log.info(
                    "relayed %s from the outbox (stored by %s)",
                    item.entry.type,
                    item.owner or "an unknown replica",
                    extra={"correlation_id": item.correlation_id},
                )
        if len(leftovers) < LEFTOVER_PAGE:
            # Everything the dead left behind is out; they need no more looking after.
            self.look_for_leftovers = False
            await self.instances.forget(dead)
        return relayed

    async def _retry_failed(self) -> int:
        relayed = 0
        for (correlation_id, seq), entry in list(self.failed.items()):
            if await self._relay(correlation_id, entry):
                relayed += 1
            del self.failed[(correlation_id, seq)]
        return relayed

    async def _settle_doubtful(self) -> int:
        """Publish the doubtful appends that turned out stored (the entry as stored: at
        that seq may be another writer's, which its owner publishes)."""
        relayed = 0
        for key, since in list(self.doubtful.items()):
            if key in self.inflight:
                continue  # tried again meanwhile: that attempt owns it
            found = await self.repo.entry_at(*key)
            if found is None:
                if self.clock() - since > DOUBT_WINDOW:
                    del self.doubtful[key]
                continue
            del self.doubtful[key]
            item, published = found
            mine = item.owner == self.repo.instance
            if published or not mine or key in self.unmarked or key in self.failed:
                continue  # out already, or another replica's (it publishes its own)
            if await self._relay(item.correlation_id, item.entry):
                relayed += 1
                log.warning(
                    "published %s whose store write had failed but landed",
                    item.entry.type,
                    extra={"correlation_id": item.correlation_id},
                )
        return relayed

    async def _relay(self, correlation_id: str, entry: Entry) -> bool:
        # A listing of leftovers may predate an inline publish that has since finished
        # (it marks the entry before leaving `inflight`), so look again first.
        if not await self.repo.is_unpublished(correlation_id, entry.seq):
            return False
        approval = await self.repo.get(correlation_id)
        if approval is not None:
            await self.repo.project(approval)
        if (event := entry.event()) is not None:
            await self.publish(event)
        await self.repo.mark_published(correlation_id, entry.seq)
        self.metrics.outbox_relayed.inc()
        return True
