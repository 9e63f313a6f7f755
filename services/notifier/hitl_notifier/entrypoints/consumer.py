"""Kafka entrypoints: approval.requested and approval.decided -> the notifier's use cases."""

from collections.abc import Callable

from faststream.kafka import KafkaBroker
from hitl_contracts import ApprovalDecided, ApprovalRequested
from hitl_shared.health import Probe
from hitl_shared.kafka import subscribe

from hitl_notifier.service_layer.handlers import NotifierService
from hitl_notifier.settings import NotifierSettings


def register(
    broker: KafkaBroker,
    settings: NotifierSettings,
    service: NotifierService,
    *,
    healthy: Probe,
    on_dead_letter: Callable[[str], None] | None = None,
) -> None:
    async def on_requested(event: ApprovalRequested) -> None:
        await service.on_requested(event)

    async def on_decided(event: ApprovalDecided) -> None:
        await service.on_decided(event)

    group = settings.group_id("notifier")
    subscribe(
        broker,
        settings,
        topic=settings.topics.approval_requested,
        group=group,
        model=ApprovalRequested,
        handler=on_requested,
        healthy=healthy,
        on_dead_letter=on_dead_letter,
    )
    subscribe(
        broker,
        settings,
        topic=settings.topics.approval_decided,
        group=group,
        model=ApprovalDecided,
        handler=on_decided,
        healthy=healthy,
        on_dead_letter=on_dead_letter,
    )
