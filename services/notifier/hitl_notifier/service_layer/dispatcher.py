"""Runs one delivery to its end: attempts with back-off, then sent or dead-lettered.

Each delivery runs as its own task, so a slow or failing channel never holds up
another channel or another approval. Progress (attempts, lease) is written to the
store after every attempt, so a replica that dies mid-way is replaced by whoever
finds its lease expired.
"""

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from hitl_contracts import (
    NotificationDeadLetter,
    NotificationKind,
    NotificationRecorded,
    NotificationStatus,
)

from hitl_notifier.channels.errors import DeliveryError
from hitl_notifier.domain.deliveries import ApprovalState, Delivery
from hitl_notifier.domain.notice import Notice
from hitl_notifier.domain.schedule import backoff
from hitl_notifier.service_layer.channels import Channels
from hitl_notifier.service_layer.ports import DeliveryStore, Outcomes

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]
AfterSent = Callable[[Delivery], Awaitable[None]]


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    base_seconds: float = 0.5
    max_seconds: float = 30.0
    lease: timedelta = timedelta(seconds=120)


class Dispatcher:
    def __init__(
        self,
        store: DeliveryStore,
        channels: Channels,
        outcomes: Outcomes,
        *,
        policy: RetryPolicy,
        clock: Clock,
        link_for: Callable[[str], str],
        rng: random.Random | None = None,
        after_sent: AfterSent | None = None,
    ) -> None:
        self.store = store
        self.channels = channels
        self.outcomes = outcomes
        self.policy = policy
        self.clock = clock
        self.link_for = link_for
        self.rng = rng or random.Random()
        # Called once a delivery is sent (the handlers' follow-up of a decision that
        # arrived while it was in flight); passed in by the composition root.
        self.after_sent = after_sent
        self.tasks: set[asyncio.Task[None]] = set()

    def launch(
        self, delivery: Delivery, *, state: ApprovalState | None = None, attempts_done: int = 0
    ) -> None:
        """Run `delivery` in the background; `state` saves a read when the caller has it."""
        task = asyncio.create_task(self._guarded(delivery, state, attempts_done), name=delivery.key)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def idle(self) -> None:
        while self.tasks:
            await asyncio.gather(*list(self.tasks), return_exceptions=True)

    async def close(self) -> None:
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*list(self.tasks), return_exceptions=True)

    async def _guarded(
        self, delivery: Delivery, state: ApprovalState | None, attempts_done: int
    ) -> None:
        try:
            await self.run(delivery, state=state, attempts_done=attempts_done)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Store or broker trouble: the lease runs out and the delivery is taken over.
            log.exception(
                "delivery %s interrupted; it resumes when its lease expires",
                delivery.key,
                extra={"correlation_id": delivery.correlation_id},
            )

    async def run(
        self, delivery: Delivery, *, state: ApprovalState | None = None, attempts_done: int = 0
    ) -> None:
        if state is None:
            state = await self.store.state(delivery.correlation_id)
        if state is None or state.request is None:
            log.error("no request known for %s; dropping", delivery.key)
            return
        attempt = attempts_done
        error = "no attempt made"
        while attempt < self.policy.attempts:
            attempt += 1
            notice = Notice(
                kind=delivery.kind,
                request=state.request,
                approval_url=self.link_for(delivery.correlation_id),
                now=self.clock(),
                decision=state.decision if delivery.kind is NotificationKind.DECIDED else None,
            )
            try:
                ref = await self._send(delivery, notice)
            except DeliveryError as exc:
                error = str(exc)
                log.warning(
                    "delivery %s attempt %d/%d failed: %s",
                    delivery.key,
                    attempt,
                    self.policy.attempts,
                    error,
                    extra={"correlation_id": delivery.correlation_id},
                )
                if exc.permanent:
                    break
                delay = backoff(
                    attempt,
                    base=self.policy.base_seconds,
                    cap=self.policy.max_seconds,
                    rng=self.rng,
                )
                if exc.retry_after is not None:
                    delay = max(delay, min(exc.retry_after, self.policy.max_seconds))
                now = self.clock()
                await self.store.attempted(
                    delivery.key,
                    attempts=attempt,
                    error=error,
                    now=now,
                    lease_until=now + self.policy.lease + timedelta(seconds=delay),
                )
                if attempt < self.policy.attempts:
                    await asyncio.sleep(delay)
                continue
            await self._sent(delivery, attempt, ref)
            return
        await self._failed(delivery, attempt, error, state)

    async def _send(self, delivery: Delivery, notice: Notice) -> str:
        try:
            return await self.channels.send(delivery, notice)
        except DeliveryError:
            raise
        except Exception as exc:
            # Channels turn every network trouble into DeliveryError; anything else is
            # this message failing to be built (a header with a line break, a value no
            # channel can carry): the same every time, so it counts as a permanent failure
            # and is dead-lettered, never resumed forever past NOTIFIER_ATTEMPTS.
            log.exception(
                "delivery %s cannot be built",
                delivery.key,
                extra={"correlation_id": delivery.correlation_id},
            )
            raise DeliveryError(f"this message cannot be sent: {exc!r}", permanent=True) from exc

    async def _sent(self, delivery: Delivery, attempts: int, ref: str) -> None:
        await self.store.finish(
            delivery.key, status="sent", attempts=attempts, message_ref=ref, now=self.clock()
        )
        log.info(
            "%s notification sent via %s to %s after %d attempt(s)",
            delivery.kind.value,
            delivery.target.channel,
            delivery.target.recipient,
            attempts,
            extra={"correlation_id": delivery.correlation_id, "run_id": delivery.run_id},
        )
        await self.outcomes.recorded(
            self._outcome(delivery, NotificationStatus.SENT, attempts, ref=ref)
        )
        if self.after_sent is not None:
            await self.after_sent(delivery)

    async def _failed(
        self, delivery: Delivery, attempts: int, error: str, state: ApprovalState
    ) -> None:
        await self.store.finish(
            delivery.key, status="failed", attempts=max(attempts, 1), error=error, now=self.clock()
        )
        log.error(
            "%s notification via %s to %s failed after %d attempt(s): %s",
            delivery.kind.value,
            delivery.target.channel,
            delivery.target.recipient,
            attempts,
            error,
            extra={"correlation_id": delivery.correlation_id, "run_id": delivery.run_id},
        )
        await self.outcomes.recorded(
            self._outcome(delivery, NotificationStatus.FAILED, attempts, error=error)
        )
        await self.outcomes.dead_letter(
            NotificationDeadLetter(
                correlation_id=delivery.correlation_id,
                run_id=delivery.run_id,
                channel=delivery.target.channel,
                recipient=delivery.target.recipient,
                kind=delivery.kind,
                attempts=max(attempts, 1),
                error=error,
                payload={
                    "delivery_key": delivery.key,
                    "updates": delivery.updates,
                    "request": state.request.model_dump(mode="json") if state.request else None,
                },
            )
        )

    @staticmethod
    def _outcome(
        delivery: Delivery,
        status: NotificationStatus,
        attempts: int,
        *,
        error: str = "",
        ref: str = "",
    ) -> NotificationRecorded:
        return NotificationRecorded(
            correlation_id=delivery.correlation_id,
            run_id=delivery.run_id,
            channel=delivery.target.channel,
            recipient=delivery.target.recipient,
            kind=delivery.kind,
            status=status,
            attempts=max(attempts, 1),
            error=error,
            message_ref=ref,
        )
