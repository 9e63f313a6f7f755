"""Waiters on approvals (long-poll, SSE) that cost the store nothing per waiter.

FerretDB has no change streams, so someone must look for changes; here it is one
`Watch` per watched approval, shared by all of its waiters on this replica, never
the waiters themselves. A watch learns of a change three ways:

- this replica's own commits hand it the new state (`offer`, no read at all);
- a group-less consumer of `approval.decided` pokes it for other replicas'
  decisions and expiries (`poke`: one read of the approval, however many wait);
- a slow periodic refresh (`refresh_all`) catches what publishes nothing (another
  replica's quorum vote or escalation, a lost event): one read per watched approval.
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

from hitl_approval.domain.model import Approval

log = logging.getLogger(__name__)

Loader = Callable[[str], Awaitable[Approval | None]]


@dataclass
class Watch:
    """The newest known state of one approval, and a signal for the next change."""

    approval: Approval
    waiters: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    reading: asyncio.Task[None] | None = None

    def accept(self, approval: Approval) -> None:
        # Streams only grow: an older or equal version is news to nobody.
        if approval.version > self.approval.version:
            self.approval = approval
            self.changed.set()
            self.changed = asyncio.Event()

    async def beyond(self, version: int, timeout: float) -> Approval:
        """The state once its version passes `version` (or is terminal); as is on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.approval.version <= version and not self.approval.status.terminal:
            left = deadline - loop.time()
            if left <= 0:
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), left)
        return self.approval


class Watchers:
    def __init__(self, load: Loader) -> None:
        self.load = load
        self.watches: dict[str, Watch] = {}
        self.arriving: dict[str, asyncio.Future[Approval | None]] = {}

    @contextlib.asynccontextmanager
    async def watching(self, approval: Approval) -> AsyncIterator[Watch]:
        """Share (or start) the watch of `approval` for as long as the caller waits."""
        watch = self.watches.get(approval.correlation_id)
        if watch is None:
            watch = self.watches[approval.correlation_id] = Watch(approval)
        else:
            watch.accept(approval)
        watch.waiters += 1
        try:
            yield watch
        finally:
            watch.waiters -= 1
            if watch.waiters == 0:
                self.watches.pop(approval.correlation_id, None)

    async def current(self, correlation_id: str) -> Approval | None:
        """Where a new waiter starts: the watched state if someone already waits, else one
        read shared by every waiter arriving meanwhile (a crowd arrives at once)."""
        if (watch := self.watches.get(correlation_id)) is not None:
            return watch.approval
        reading = self.arriving.get(correlation_id)
        if reading is None:
            reading = self.arriving[correlation_id] = asyncio.ensure_future(
                self.load(correlation_id)
            )
            reading.add_done_callback(lambda _: self.arriving.pop(correlation_id, None))
        # Shielded: one waiter giving up must not cancel the read the others wait for.
        return await asyncio.shield(reading)

    def waiting(self) -> int:
        return sum(watch.waiters for watch in self.watches.values())

    def offer(self, approval: Approval) -> None:
        """This replica stored a newer state: waiters have it without a read."""
        if (watch := self.watches.get(approval.correlation_id)) is not None:
            watch.accept(approval)

    def poke(self, correlation_id: str) -> None:
        """Something changed elsewhere: read the approval once for all of its waiters."""
        watch = self.watches.get(correlation_id)
        if watch is None or watch.approval.status.terminal:
            return
        if watch.reading is None or watch.reading.done():
            # One read in flight per approval; pokes meanwhile are answered by it.
            watch.reading = asyncio.create_task(self._read(correlation_id, watch))

    async def _read(self, correlation_id: str, watch: Watch) -> None:
        try:
            approval = await self.load(correlation_id)
        except Exception:
            # The next poke or refresh reads again; a waiter only waits a little longer.
            log.warning("could not re-read approval %s for its waiters", correlation_id)
            return
        if approval is not None:
            watch.accept(approval)

    async def refresh_all(self) -> int:
        """The safety net: one read per watched, undecided approval."""
        pending = [cid for cid, w in self.watches.items() if not w.approval.status.terminal]
        for correlation_id in pending:
            if (watch := self.watches.get(correlation_id)) is not None:
                await self._read(correlation_id, watch)
        return len(pending)
