"""Publishes delivery outcomes to `notifications` and final failures to `notifications.dlq`."""

import logging

from faststream.kafka import KafkaBroker
from hitl_contracts import NotificationDeadLetter, NotificationRecorded
from hitl_shared.kafka import publish
from hitl_shared.topics import Topics, dlq

log = logging.getLogger(__name__)


class OutcomePublisher:
    def __init__(self, broker: KafkaBroker, topics: Topics) -> None:
        self.broker = broker
        self.topics = topics

    async def recorded(self, event: NotificationRecorded) -> None:
        await self._publish(self.topics.notifications, event, event.run_id, event.correlation_id)

    async def dead_letter(self, event: NotificationDeadLetter) -> None:
        await self._publish(
            dlq(self.topics.notifications), event, event.run_id, event.correlation_id
        )

    async def _publish(
        self,
        topic: str,
        event: NotificationRecorded | NotificationDeadLetter,
        key: str,
        correlation_id: str,
    ) -> None:
        try:
            await publish(self.broker, topic, event, key=key, correlation_id=correlation_id)
        except Exception:
            # The outcome is in the notifier's store either way; the broker may be back later.
            log.exception(
                "could not publish the notification outcome to %s",
                topic,
                extra={"correlation_id": correlation_id, "run_id": key},
            )
