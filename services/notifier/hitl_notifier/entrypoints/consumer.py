"""Kafka entrypoints: approval.requested and approval.decided -> the notifier's use cases.

A decision is acted on (Slack messages updated, webhooks and emails told) only when
the approval service's signature verifies: anyone who can write to the topic could
otherwise tell reviewers and webhook receivers that a payment was approved. An
unsigned, unknown-key or altered decision is logged, counted and dead-lettered with
the reason. Keys that cannot be fetched are an outage (retried), never a verdict.
"""

import logging
from collections.abc import Callable

from faststream.kafka import KafkaBroker
from hitl_contracts import ApprovalDecided, ApprovalRequested
from hitl_contracts.signing import BadSignature
from hitl_shared.decision_keys import DecisionKeys
from hitl_shared.health import Probe
from hitl_shared.kafka import PoisonMessage, subscribe_concurrent

from hitl_notifier.service_layer.handlers import NotifierService
from hitl_notifier.settings import NotifierSettings

log = logging.getLogger(__name__)


def register(
    broker: KafkaBroker,
    settings: NotifierSettings,
    service: NotifierService,
    *,
    keys: DecisionKeys,
    healthy: Probe,
    on_dead_letter: Callable[[str], None] | None = None,
    on_refused: Callable[[str], None] | None = None,
) -> None:
    async def on_requested(event: ApprovalRequested) -> None:
        await service.on_requested(event)

    async def on_decided(event: ApprovalDecided) -> None:
        try:
            await keys.verify(event)
        except BadSignature as exc:
            log.error(
                "refused approval.decided (%s): %s; nothing sent",
                event.decision.value,
                exc,
                extra={"correlation_id": event.correlation_id, "run_id": event.run_id},
            )
            if on_refused:
                on_refused(refusal_reason(event))
            raise PoisonMessage(f"decision not acted on: {exc}") from exc
        await service.on_decided(event)

    group = settings.group_id("notifier")
    # Different approvals at once, each one's events in order; offsets committed in
    # order per partition, in batches (handlers are idempotent: claims are unique keys).
    subscribe_concurrent(
        broker,
        settings,
        topic=settings.topics.approval_requested,
        group=group,
        model=ApprovalRequested,
        handler=on_requested,
        key=_approval,
        limit=settings.notifier_concurrency,
        healthy=healthy,
        on_dead_letter=on_dead_letter,
    )
    subscribe_concurrent(
        broker,
        settings,
        topic=settings.topics.approval_decided,
        group=group,
        model=ApprovalDecided,
        handler=on_decided,
        key=_approval,
        limit=settings.notifier_concurrency,
        healthy=healthy,
        on_dead_letter=on_dead_letter,
    )


def _approval(event: ApprovalRequested | ApprovalDecided) -> str:
    return event.correlation_id


def refusal_reason(event: ApprovalDecided) -> str:
    """A metric label: why a decision was refused, from a short fixed set."""
    if not event.signature or not event.key_id:
        return "unsigned"
    return "bad_signature"
