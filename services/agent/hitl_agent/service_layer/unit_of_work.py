"""One step of a run, stored together with what it tells the world, or not at all.

`commit` appends the run's next checkpoint: its state, its lifecycle events, the
approval requests of calls it held and the cancellations it asks for (the outbox),
in one unique-key insert. Of two writers of the same step exactly one succeeds; the
other learns it lost (False) and re-reads. Then the outbox is delivered (at least
once: the relay repeats what a crash left). A step after which the run keeps running
does not wait for its delivery (its events go out while the next step is taken, in
order); a step where the run stops (paused, ended) waits for all of the run's.
"""

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from hitl_contracts import ApprovalRequested, RunEvent, RunEventType
from hitl_contracts.base import utcnow

from hitl_agent.domain.changes import Changes
from hitl_agent.domain.checkpoint import Checkpoint
from hitl_agent.domain.run import PendingCall, Run, RunStatus
from hitl_agent.service_layer.outbox import Outbox
from hitl_agent.service_layer.ports import RunStore

log = logging.getLogger(__name__)

# Runs kept in memory for their next message (a few KiB each).
RECENT_KEPT = 2_048

RequestFor = Callable[[Run, PendingCall], ApprovalRequested]


class RunUnitOfWork:
    def __init__(self, store: RunStore, outbox: Outbox, *, request_for: RequestFor) -> None:
        self.store = store
        self.outbox = outbox
        self.request_for = request_for
        # Runs this process stored last where a message picks them up next (accepted:
        # its task; paused: its decision), a stored checkpoint each, never mutated,
        # oldest first. A reader starts from one and probes the store forward from it.
        self.recent: dict[str, Run] = {}
        # Per run, the delivery of its last running checkpoint, still in flight.
        self.delivering: dict[str, asyncio.Task[None]] = {}

    def remember(self, run: Run) -> None:
        """Keep a copy of a checkpoint just stored, for the message that comes next."""
        self.recent[run.run_id] = run.model_copy(deep=True)
        while len(self.recent) > RECENT_KEPT:
            self.recent.pop(next(iter(self.recent)))

    def recall(self, run_id: str) -> Run | None:
        """A stored checkpoint of the run this process kept, if any (taken out)."""
        return self.recent.pop(run_id, None)

    async def load(self, run_id: str) -> Run | None:
        """The run after its last stored step, starting from what this process kept."""
        return await self.store.latest(run_id, self.recall(run_id))

    async def reload(self, run_id: str) -> Run | None:
        return await self.store.latest(run_id)

    async def commit(self, run: Run, changes: Changes) -> bool:
        """Append the run's next checkpoint; False when another writer got there first."""
        run.seq += 1
        run.updated_at = utcnow()
        # Listed for rescue from submit until it first pauses or ends. Later stretches
        # of running start from a Kafka message, whose redelivery is the rescue.
        unlist = run.active and not run.in_progress
        run.active = run.active and run.in_progress
        events: list[RunEvent] = []
        for type_, detail in changes.events:
            run.events += 1
            events.append(_event(run, type_, detail))
        checkpoint = Checkpoint(
            run=run.model_copy(deep=True),
            events=events,
            requests=[self.request_for(run, p) for p in changes.held],
            cancels=changes.cancels,
        )
        if not await self.store.append(checkpoint):
            return False
        if checkpoint.run.status is RunStatus.AWAITING_APPROVAL:
            # Its decision most likely comes back here: start from this, not the store.
            self.remember(checkpoint.run)
        for event in events:
            log.info("run %s: %s", event.type.value, event.detail, extra={"run_id": run.run_id})
        # Stored, so it may be told: the outbox first (an approval request is what a
        # reviewer waits for), then the bookkeeping nobody waits on. Should the process
        # die in between, the relay re-projects the undelivered checkpoint and the
        # rescue sweep drops a run that is no longer in progress from its list.
        previous = self.delivering.pop(run.run_id, None)
        if checkpoint.run.status is RunStatus.RUNNING and not checkpoint.cancels:
            # The run goes straight on to its next step: its events go out meanwhile,
            # after the run's earlier ones, and the run's next stop waits for them.
            self._deliver_later(checkpoint, previous)
            return True
        if previous is not None:
            await previous  # the run's events in order: the earlier checkpoints' first
        await self.outbox.deliver(checkpoint)
        bookkeeping = []
        if checkpoint.run.status is not RunStatus.RUNNING:
            # Only where a run stops (paused, ended) is it read again later; `latest`
            # probes forward past the few running steps since.
            bookkeeping.append(self.store.project(checkpoint.run))
        if unlist:
            bookkeeping.append(self.store.set_active(run.run_id, None))
        await asyncio.gather(*bookkeeping)
        return True

    def _deliver_later(self, checkpoint: Checkpoint, previous: "asyncio.Task[None] | None") -> None:
        run_id = checkpoint.run.run_id

        async def deliver() -> None:
            if previous is not None:
                await previous
            await self.outbox.deliver(checkpoint)  # never raises: the relay retries

        task = asyncio.create_task(deliver())
        self.delivering[run_id] = task

        def forget(done: "asyncio.Task[None]") -> None:
            if self.delivering.get(run_id) is done:
                del self.delivering[run_id]

        task.add_done_callback(forget)

    async def settle(self) -> None:
        """Wait for deliveries still in flight (at shutdown); what fails, the relay repeats."""
        await asyncio.gather(*self.delivering.values(), return_exceptions=True)


def _event(run: Run, type_: RunEventType, detail: dict[str, Any]) -> RunEvent:
    return RunEvent(
        run_id=run.run_id, task_id=run.task_id, type=type_, detail=detail, seq=run.events
    )
