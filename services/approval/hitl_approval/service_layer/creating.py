"""Creating an approval over HTTP: the same request, stored and announced as if from Kafka.

The request is published on `approval.requested` first, then ingested by this
replica. Publishing first means nothing is ever stored without being announced
(the notifier and every replica read that topic; their ingest of it is the usual
redelivery no-op), and a failed publish leaves nothing behind: the caller retries
with the same correlation id or Idempotency-Key. Storing it here as well means the
answer already holds the stored approval, readable and decidable at once.
"""

from datetime import timedelta
from typing import Any

from hitl_contracts import ApprovalRequested

from hitl_approval.domain.model import Approval, ApprovalError
from hitl_approval.service_layer.services import ApprovalService

# What makes two requests "the same": everything the caller chose. Ids, clocks and the
# escalation flag are the server's; the deadline counts as the timeout it came from.
_SERVER_FIELDS = frozenset(
    {"event_id", "occurred_at", "schema_version", "requested_at", "expires_at", "escalated"}
)


_TICK = timedelta(milliseconds=1)


class DifferentRequest(ApprovalError):
    """The correlation id (or Idempotency-Key) is taken by a request with other content."""

    def __init__(self, approval: Approval, fields: list[str]) -> None:
        super().__init__(
            f"correlation id {approval.correlation_id!r} is already used by a request that "
            f"differs in {', '.join(fields)}; send a new correlation_id (or Idempotency-Key) "
            "for a new request, or the same content to get the stored approval"
        )
        self.approval = approval
        self.fields = fields


def _content(request: ApprovalRequested) -> dict[str, Any]:
    return request.model_dump(mode="json", exclude=set(_SERVER_FIELDS))


def _same_deadline(a: ApprovalRequested, b: ApprovalRequested) -> bool:
    """The same timeout (relative) or the same `expires_at` (absolute), to the millisecond:
    a store may keep no finer time than that."""
    span_a, span_b = a.expires_at - a.requested_at, b.expires_at - b.requested_at
    return abs(span_a - span_b) <= _TICK or abs(a.expires_at - b.expires_at) <= _TICK


def differences(stored: ApprovalRequested, asked: ApprovalRequested) -> list[str]:
    mine, theirs = _content(stored), _content(asked)
    found = {k for k in mine.keys() | theirs.keys() if mine.get(k) != theirs.get(k)}
    if not _same_deadline(stored, asked):
        found.add("timeout / expires_at")
    return sorted(found)


async def create(service: ApprovalService, request: ApprovalRequested) -> tuple[Approval, bool]:
    """The stored approval for `request`, and whether this call created it.

    Raises DifferentRequest when its correlation id holds other content.
    """
    existing = await service.repo.get(request.correlation_id)
    if existing is None:
        await service.outbox.publish(request)
        await service.ingest(request)
        existing, created = await service.get(request.correlation_id), True
    else:
        created = False
    # A concurrent create with other content may have won the same id.
    if fields := differences(existing.request, request):
        raise DifferentRequest(existing, fields)
    return existing, created
