"""Kafka entrypoints: `approval.requested` -> ingest (in batches), `notifications` -> history
notes, and (APPROVAL_SHADOW_FEED) agents' shadow-mode records on `agent.runs` -> analytics."""

from faststream.kafka import KafkaBroker
from hitl_contracts import ApprovalRequested, NotificationRecorded, RunEvent
from hitl_shared.health import Probe
from hitl_shared.kafka import subscribe, subscribe_batch

from hitl_approval.adapters.store_time import background
from hitl_approval.adapters.traces import TraceStore
from hitl_approval.entrypoints.shadow import shadow_call
from hitl_approval.service_layer.analytics import Analytics
from hitl_approval.service_layer.services import ApprovalService
from hitl_approval.settings import ApprovalSettings


def register(
    broker: KafkaBroker,
    settings: ApprovalSettings,
    service: ApprovalService,
    *,
    healthy: Probe,
    traces: TraceStore | None = None,
    analytics: Analytics | None = None,
) -> None:
    # Nobody waits on a consumer: its store calls get the background deadline.
    async def on_requested(events: list[ApprovalRequested]) -> None:
        with background():
            await service.ingest_many(events)

    async def remember_trace(event: ApprovalRequested) -> None:
        if traces is not None:
            with background():
                await traces.remember(event.correlation_id)

    async def on_notification(event: NotificationRecorded) -> None:
        with background():
            await service.record_note(event)

    # In batches: one insert per collection for all new requests of a fetch, not two a request.
    subscribe_batch(
        broker,
        settings,
        topic=settings.topics.approval_requested,
        group=settings.group_id("approval"),
        model=ApprovalRequested,
        handler=on_requested,
        healthy=healthy,
        after_each=remember_trace if traces is not None else None,
        on_dead_letter=service.metrics.dead_lettered,
    )
    subscribe(
        broker,
        settings,
        topic=settings.topics.notifications,
        group=settings.group_id("approval-notes"),
        model=NotificationRecorded,
        handler=on_notification,
        healthy=healthy,
        on_dead_letter=service.metrics.dead_lettered,
    )
    if analytics is None or not settings.approval_shadow_feed:
        return

    async def on_run_event(event: RunEvent) -> None:
        if (call := shadow_call(event)) is not None:
            with background():
                await analytics.record_shadow([call])

    subscribe(
        broker,
        settings,
        topic=settings.topics.agent_runs,
        group=settings.group_id("approval-shadow"),
        model=RunEvent,
        handler=on_run_event,
        healthy=healthy,
        on_dead_letter=service.metrics.dead_lettered,
        # agent.runs is the agent's feed: not ours to dead-letter.
        dead_letter_invalid=False,
    )
