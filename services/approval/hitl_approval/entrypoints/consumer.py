"""Kafka entrypoint: `approval.requested` -> ingest."""

from faststream.kafka import KafkaBroker
from hitl_shared.contracts import ApprovalRequested
from hitl_shared.kafka import subscribe

from hitl_approval.service_layer.services import ApprovalService
from hitl_approval.settings import ApprovalSettings


def register(broker: KafkaBroker, settings: ApprovalSettings, service: ApprovalService) -> None:
    async def on_requested(event: ApprovalRequested) -> None:
        await service.ingest(event)

    subscribe(
        broker,
        settings,
        topic=settings.topics.approval_requested,
        group=settings.group_id("approval"),
        model=ApprovalRequested,
        handler=on_requested,
    )
