"""Server-Sent Events that keep an open page current.

The store is the truth and FerretDB has no change streams, so each stream polls
what its page shows every POLL_SECONDS and sends an event when it changed. A
stream ends after STREAM_SECONDS: the browser's EventSource reconnects by itself
with the last event id, so nothing is missed and a stopping server is never held
open for long by a forgotten tab.
"""

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import Request

from hitl_approval.domain.model import Approval, EntryType
from hitl_approval.entrypoints.web.present import stamp
from hitl_approval.service_layer.services import ApprovalService
from hitl_approval.views import QueueQuery, Views

log = logging.getLogger(__name__)

POLL_SECONDS = 0.5
STREAM_SECONDS = 30.0
HEARTBEAT_SECONDS = 10.0
RETRY_MS = 1000


def frame(event: str, data: dict[str, Any], *, id: str) -> str:
    return f"id: {id}\nevent: {event}\ndata: {json.dumps(data)}\n\n"


async def _ticks(request: Request) -> AsyncIterator[bool]:
    """Yield every poll interval; True when a heartbeat is due. Ends on disconnect or age."""
    start = last_beat = time.monotonic()
    while time.monotonic() - start < STREAM_SECONDS:
        if await request.is_disconnected():
            return
        now = time.monotonic()
        beat = now - last_beat >= HEARTBEAT_SECONDS
        if beat:
            last_beat = now
        yield beat
        await asyncio.sleep(POLL_SECONDS)


async def queue_events(
    request: Request, views: Views, query: QueueQuery, since: str
) -> AsyncIterator[str]:
    yield f"retry: {RETRY_MS}\n\n"
    last = since
    async for beat in _ticks(request):
        try:
            current = await views.queue_signature(query)
        except Exception:
            log.warning("queue stream: store read failed; the browser reconnects", exc_info=True)
            return
        if current != last:
            last = current
            yield frame("queue", {"signature": current}, id=current)
        elif beat:
            yield ": keep-alive\n\n"


def describe(approval: Approval) -> str:
    """One sentence on the approval's latest change, for the live banner."""
    decided = approval.decision
    last = approval.entries[-1]
    if decided is None and last.type is EntryType.VOTE:
        votes = f"{len(approval.approvers)} of {approval.policy.quorum} approvals"
        return f"{last.actor} approved via {last.channel.value}: {votes} so far."
    if decided is None and last.type is EntryType.ESCALATED:
        return f"Escalated: no decision in time, so the deadline moved to {stamp(approval.expires_at)}."
    if decided is None:
        return f"Updated: {last.type.value} by {last.actor} via {last.channel.value}."
    who = "the timeout" if decided.decision == "expired" else decided.reviewer
    text = f"{decided.decision.value.capitalize()} by {who} via {decided.channel.value} at {stamp(decided.decided_at)}."
    if decided.comment:
        text += f" Comment: {decided.comment}"
    return text


async def approval_events(
    request: Request, service: ApprovalService, correlation_id: str, since: int
) -> AsyncIterator[str]:
    yield f"retry: {RETRY_MS}\n\n"
    last = since
    async for beat in _ticks(request):
        try:
            approval = await service.repo.get(correlation_id)
        except Exception:
            log.warning("approval stream: store read failed; the browser reconnects", exc_info=True)
            return
        if approval is not None and approval.version != last:
            last = approval.version
            data = {
                "status": approval.status.value,
                "version": approval.version,
                "message": describe(approval),
            }
            yield frame("changed", data, id=str(approval.version))
        elif beat:
            yield ": keep-alive\n\n"
