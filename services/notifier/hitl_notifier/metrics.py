"""Prometheus metrics of the notifier, on a registry of its own.

Delivery outcomes are counted where they are published, so a sent and a failed
delivery are counted exactly as the approval's history shows them.
"""

from faststream.kafka import KafkaBroker
from hitl_contracts import NotificationDeadLetter, NotificationRecorded
from hitl_shared.metrics import ConsumerLag, dead_letter_counter
from hitl_shared.topics import Topics
from prometheus_client import CollectorRegistry, Counter

from hitl_notifier.adapters.outcomes import OutcomePublisher


class NotifierMetrics:
    def __init__(self, broker: KafkaBroker) -> None:
        self.registry = CollectorRegistry()
        self.lag = ConsumerLag(broker, self.registry)
        self.dead_letters = dead_letter_counter(self.registry)
        self.deliveries = Counter(
            "hitl_notifier_deliveries",
            "Delivery outcomes (one kind, channel and recipient each), by channel, kind, status.",
            ["channel", "kind", "status"],
            registry=self.registry,
        )
        self.failures = Counter(
            "hitl_notifier_failures",
            "Deliveries that failed for good (after their last attempt), by channel and kind.",
            ["channel", "kind"],
            registry=self.registry,
        )

        self.decisions_refused = Counter(
            "hitl_notifier_decisions_refused",
            "approval.decided messages not acted on (unsigned, unknown key, altered), by reason.",
            ["reason"],
            registry=self.registry,
        )

    def dead_lettered(self, topic: str) -> None:
        self.dead_letters.labels(topic=topic).inc()


class MeteredOutcomes(OutcomePublisher):
    """Publishes outcomes as usual and counts them."""

    def __init__(self, broker: KafkaBroker, topics: Topics, metrics: NotifierMetrics) -> None:
        super().__init__(broker, topics)
        self.metrics = metrics

    async def recorded(self, event: NotificationRecorded) -> None:
        self.metrics.deliveries.labels(
            channel=event.channel, kind=event.kind.value, status=event.status.value
        ).inc()
        await super().recorded(event)

    async def dead_letter(self, event: NotificationDeadLetter) -> None:
        self.metrics.failures.labels(channel=event.channel, kind=event.kind.value).inc()
        # It goes to `notifications.dlq`: counted like any dead letter of that topic.
        self.metrics.dead_lettered(self.topics.notifications)
        await super().dead_letter(event)
