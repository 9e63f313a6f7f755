"""Use cases of the notifier: a request arrived, a decision arrived, time passed.

Handlers only decide who must hear what and claim those deliveries (a unique insert
each); the dispatcher sends them in the background, so the consumer moves on at
once and a failing channel delays nothing else.
"""

import asyncio
import logging
from collections.abc import Iterable
from datetime import datetime

from hitl_contracts import ApprovalDecided, ApprovalRequested, NotificationKind

from hitl_notifier.domain.deliveries import ApprovalState, Delivery, Target
from hitl_notifier.domain.routing import Router
from hitl_notifier.domain.schedule import remind_at
from hitl_notifier.service_layer.dispatcher import Clock, Dispatcher
from hitl_notifier.service_layer.ports import NotifierStore

log = logging.getLogger(__name__)

# Messages about a pending approval; a decision updates or follows up on these.
_ASKING = (NotificationKind.REQUESTED, NotificationKind.REMINDER, NotificationKind.ESCALATION)


class NotifierService:
    def __init__(
        self,
        store: NotifierStore,
        dispatcher: Dispatcher,
        router: Router,
        *,
        clock: Clock,
        reminder_fraction: float,
        email_follow_up: bool,
    ) -> None:
        self.store = store
        self.dispatcher = dispatcher
        self.router = router
        self.clock = clock
        self.reminder_fraction = reminder_fraction
        self.email_follow_up = email_follow_up
        # With no recipient anywhere (no default, no route, no escalation: how the
        # local demo runs), nothing about an approval can ever be sent, so nothing is
        # stored either: no request to remind of, no question to follow up. Recipients
        # are read at start-up only; see `on_decided` for a restart that adds some.
        self.silent = not router.reaches_anyone()

    async def on_requested(self, request: ApprovalRequested) -> int:
        """Notify the request's route (the escalation route when escalated)."""
        if self.silent:
            return 0
        escalated = request.escalated
        targets = self.router.targets(request, escalation=escalated)
        state = await self.store.remember(
            request,
            # A reminder goes to the request's route: none when nobody is on it.
            remind_at=None
            if escalated or not targets
            else remind_at(request.requested_at, request.expires_at, self.reminder_fraction),
            escalated=escalated,
            asking=bool(targets),
        )
        extra = {"correlation_id": request.correlation_id, "run_id": request.run_id}
        if state.decision is not None:
            log.info("approval already decided; nobody to ask", extra=extra)
            return 0
        kind = NotificationKind.ESCALATION if escalated else NotificationKind.REQUESTED
        if not targets:
            log.info("no route has a recipient for this approval", extra=extra)
        return await self._claim_and_launch(state, kind, targets)

    async def on_decided(self, decided: ApprovalDecided) -> int:
        """Record the decision and tell whoever was asked.

        Silent (nobody configured), nothing is recorded. A notifier restarted with
        recipients then finds no request for an approval asked while it was silent,
        and so tells nobody of its decision: nobody was asked."""
        if self.silent:
            return 0
        state = await self.store.record_decision(decided)
        return await self.follow_up(decided.correlation_id, state)

    async def follow_up(self, correlation_id: str, known: ApprovalState | None = None) -> int:
        """Update every Slack message, notify webhooks and (by config) emails of the decision.

        `known`: the approval as just stored, when the caller has it (no read)."""
        state = known or await self.store.state(correlation_id)
        if state is None or state.decision is None or state.request is None:
            return 0
        if not state.asked:
            # Nobody was asked (no route had a recipient): no message to update, and
            # no read of the questions sent.
            return 0
        deliveries: list[Delivery] = []
        records = await self.store.sent(correlation_id)
        for record in records:
            sent = record.delivery
            if sent.kind not in _ASKING:
                continue
            target = sent.target
            if target.channel == "slack":
                deliveries.append(self._decided(state, target, updates=record.message_ref))
            elif target.channel == "webhook" or (
                target.channel == "email" and self.email_follow_up
            ):
                deliveries.append(self._decided(state, target))
        launched = await self._launch_new(deliveries, state)
        # Claimed (by this replica or another): these questions need no more looking at.
        await self.store.followed_up([record.delivery.key for record in records])
        return launched

    async def tick(self) -> int:
        """Send due reminders and resume deliveries whose owner vanished."""
        now = self.clock()
        started = 0
        for state in await self.store.due_reminders(now):
            if state.request is not None:
                targets = self.router.targets(state.request)
                if targets and not state.asked:
                    # Routes changed since the request (a restart with new settings).
                    await self.store.mark_asked(state.correlation_id)
                started += await self._claim_and_launch(state, NotificationKind.REMINDER, targets)
            await self.store.mark_reminded(state.correlation_id)
        for record in await self.store.abandoned(now):
            if await self.store.take_over(record, lease_until=self._lease_until(now)):
                log.warning(
                    "resuming abandoned delivery %s after %d attempt(s)",
                    record.delivery.key,
                    record.attempts,
                    extra={"correlation_id": record.delivery.correlation_id},
                )
                self.dispatcher.launch(record.delivery, attempts_done=record.attempts)
                started += 1
        return started

    async def after_sent(self, delivery: Delivery) -> None:
        # A decision that arrived while this was in flight found nothing to update yet.
        if delivery.kind in _ASKING:
            state = await self.store.state(delivery.correlation_id)
            if state is not None and state.decision is not None:
                await self.follow_up(delivery.correlation_id)

    async def _claim_and_launch(
        self, state: ApprovalState, kind: NotificationKind, targets: Iterable[Target]
    ) -> int:
        assert state.request is not None
        run_id = state.request.run_id
        deliveries = [Delivery(state.correlation_id, run_id, kind, t) for t in targets]
        return await self._launch_new(deliveries, state)

    async def _launch_new(self, deliveries: list[Delivery], state: ApprovalState) -> int:
        now = self.clock()
        lease_until = self._lease_until(now)
        # One round trip for all claims: each is its own unique insert, so order is moot.
        claimed = await asyncio.gather(
            *(self.store.claim(d, now=now, lease_until=lease_until) for d in deliveries)
        )
        launched = 0
        for delivery, won in zip(deliveries, claimed, strict=True):
            if won:
                self.dispatcher.launch(delivery, state=state)
                launched += 1
            else:
                log.info(
                    "already notified: %s",
                    delivery.key,
                    extra={"correlation_id": delivery.correlation_id},
                )
        return launched

    def _lease_until(self, now: datetime) -> datetime:
        return now + self.dispatcher.policy.lease

    @staticmethod
    def _decided(state: ApprovalState, target: Target, *, updates: str = "") -> Delivery:
        assert state.request is not None
        return Delivery(
            state.correlation_id,
            state.request.run_id,
            NotificationKind.DECIDED,
            target,
            updates=updates,
        )
