"""Telling the world what a checkpoint recorded, at least once.

A checkpoint is stored first, with its events, approval requests and approval
cancellations; then they are delivered and the checkpoint is marked published.
A crash in between leaves it unpublished, and the relay delivers it again (events
keep their event_id, so consumers de-duplicate).

Markers of delivered checkpoints are removed in batches by the relay (about once a
second), not one delete per checkpoint on the path of a decision: a crash before
that only re-delivers the last second's events, which consumers already de-duplicate.
"""

import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from hitl_contracts import ApprovalRequested, RunEvent
from hitl_contracts.base import utcnow

from hitl_agent.domain.changes import CancelOrder
from hitl_agent.domain.checkpoint import Checkpoint
from hitl_agent.service_layer.ports import ApprovalClient, RunStore

log = logging.getLogger(__name__)

# A marker whose checkpoint never appeared: its writer is long gone.
ORPHAN_AFTER = timedelta(minutes=10)

# Each publisher publishes its batch in order and returns once all of it is acknowledged.
RequestPublisher = Callable[[list[ApprovalRequested]], Awaitable[None]]
EventPublisher = Callable[[list[RunEvent]], Awaitable[None]]


class Outbox:
    def __init__(
        self,
        store: RunStore,
        *,
        publish_request: RequestPublisher,
        publish_event: EventPublisher,
        approvals: ApprovalClient | None,
    ) -> None:
        self.store = store
        self.publish_request = publish_request
        self.publish_event = publish_event
        self.approvals = approvals
        # Delivered checkpoints whose markers are still to be removed.
        self.done: set[str] = set()

    async def deliver(self, checkpoint: Checkpoint) -> bool:
        if not checkpoint.has_outbox:
            return True
        ids = {"run_id": checkpoint.run.run_id}
        try:
            if not checkpoint.sent:
                # The requests are acknowledged before any event says the run waits.
                if checkpoint.requests:
                    await self.publish_request(list(checkpoint.requests))
                if checkpoint.events:
                    await self.publish_event(list(checkpoint.events))
                checkpoint.sent = True
                if checkpoint.cancels:
                    await self.store.mark_sent(checkpoint)
            for order in checkpoint.cancels:
                await self._cancel(order, ids)
        except Exception as exc:
            log.warning(
                "outbox of %s not delivered yet, the relay retries: %r",
                checkpoint.id,
                exc,
                extra=ids,
            )
            return False
        self.done.add(checkpoint.id)
        return True

    async def forget_delivered(self) -> int:
        """Remove the markers of delivered checkpoints, in one store call."""
        done = sorted(self.done)
        if done:
            await self.store.delivered_many(done)
            self.done.difference_update(done)
        return len(done)

    async def _cancel(self, order: CancelOrder, ids: dict[str, str]) -> None:
        if self.approvals is None:
            raise RuntimeError("no approval service configured to cancel approvals")
        status = await self.approvals.cancel(order.correlation_id, order.comment)
        log.info(
            "approval cancelled with its run (now %s)",
            status,
            extra={**ids, "correlation_id": order.correlation_id},
        )

    async def relay(self, *, grace: timedelta) -> int:
        """Deliver checkpoints a crash (or an outage) left undelivered."""
        delivered = 0
        await self.forget_delivered()
        now = utcnow()
        for marker in await self.store.undelivered(now - grace):
            if marker["_id"] in self.done:
                continue  # delivered; its marker goes with the next batch
            checkpoint = await self.store.checkpoint(str(marker["_id"]))
            if checkpoint is None:
                # Its writer died before storing it, or lost the race for its seq.
                if marker["at"] < now - ORPHAN_AFTER:
                    await self.store.delivered(str(marker["_id"]))
                continue
            checkpoint.sent = bool(marker.get("sent"))
            # The run may have gone on since (on another worker): project where it is
            # now, not the older state this checkpoint holds, which would stay listed.
            now_at = await self.store.latest(checkpoint.run.run_id, known=checkpoint.run)
            await self.store.project(now_at or checkpoint.run)
            if await self.deliver(checkpoint):
                delivered += 1
        await self.forget_delivered()
        return delivered
