"""Awaiting a decision without polling: the SSE stream, and the wake-ups of waiters.

The stream and the long-poll (longpoll.py) wait on the replica's shared `Watch` of the approval (service_layer/watching.py),
so a thousand waiters cost the store what one does. Both are safe to reconnect: the
long-poll takes the version the caller already has (`after_version`), the stream
takes `Last-Event-ID` (the version it last sent) and starts after it.
"""

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Query, Request
from fastapi.responses import Response, StreamingResponse
from faststream.kafka import KafkaBroker
from faststream.message import StreamMessage

from hitl_approval.domain.errors import NotFound
from hitl_approval.domain.model import Approval
from hitl_approval.entrypoints.rest import longpoll
from hitl_approval.entrypoints.rest.api import CorrelationId
from hitl_approval.entrypoints.rest.auth import CurrentReviewer
from hitl_approval.entrypoints.rest.errors import INVALID, NOT_FOUND, UNAUTHORIZED
from hitl_approval.entrypoints.rest.schemas import ApprovalView
from hitl_approval.service_layer.watching import Watchers
from hitl_approval.settings import ApprovalSettings

router = APIRouter(prefix="/v1/approvals", tags=["approvals"])

HEARTBEAT_SECONDS = 15.0
RETRY_MS = 1000


def _frame(approval: Approval) -> str:
    data = json.dumps(ApprovalView.of(approval).model_dump(mode="json"), separators=(",", ":"))
    return f"id: {approval.version}\nevent: approval\ndata: {data}\n\n"


async def _changes(
    request: Request, watchers: Watchers, approval: Approval, sent: int, max_seconds: float
) -> AsyncIterator[str]:
    yield f"retry: {RETRY_MS}\n\n"
    loop = asyncio.get_running_loop()
    deadline = loop.time() + max_seconds
    async with watchers.watching(approval) as watch:
        while True:
            current = watch.approval
            if current.version > sent:
                sent = current.version
                yield _frame(current)
            if current.status.terminal:
                return
            left = deadline - loop.time()
            if left <= 0 or await request.is_disconnected():
                # The client reconnects with Last-Event-ID and misses nothing.
                return
            await watch.beyond(sent, min(left, HEARTBEAT_SECONDS))
            if watch.approval.version <= sent:
                yield ": keep-alive\n\n"


@router.get(
    "/{correlation_id}/events",
    responses={
        200: {
            "description": "`text/event-stream`: an `approval` event (data: the approval, "
            "id: its version) now and on every change; the stream ends after the terminal "
            "one, or after APPROVAL_STREAM_MAX_SECONDS (reconnect with Last-Event-ID).",
            # One schema per event (as OpenAPI tools read an event stream): its fields.
            "content": {
                "text/event-stream": {
                    "schema": {
                        "type": "object",
                        "properties": {
                            "event": {"type": "string", "enum": ["approval"]},
                            "id": {"type": "string", "description": "the approval's version"},
                            "data": {
                                "type": "string",
                                "description": "the approval as JSON, as GET /v1/approvals/{id}",
                            },
                            "retry": {"type": "integer"},
                        },
                    }
                }
            },
        },
        204: {"description": "Last-Event-ID already names the terminal state: nothing to send."},
        **UNAUTHORIZED,
        **NOT_FOUND,
        **INVALID,
    },
    summary="Server-Sent Events of one approval until it is decided",
    response_model=None,
)
async def approval_events(
    correlation_id: CorrelationId,
    request: Request,
    _: CurrentReviewer,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            max_length=32,
            description="The last `id` received; the stream resumes after it.",
        ),
    ] = None,
    after_version: Annotated[
        int | None, Query(ge=0, le=2**31, description="Same as Last-Event-ID, for plain clients.")
    ] = None,
) -> Response:
    sent = -1
    if last_event_id is not None and last_event_id.strip().isdigit():
        sent = int(last_event_id.strip())
    elif after_version is not None:
        sent = after_version
    watchers: Watchers = request.app.state.watchers
    try:
        approval = await longpoll.current(request, correlation_id)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    if approval.status.terminal and approval.version <= sent:
        # 204 tells an EventSource to stop reconnecting: there is nothing more, ever.
        return Response(status_code=204)
    settings: ApprovalSettings = request.app.state.settings
    return StreamingResponse(
        _changes(
            request,
            watchers,
            approval,
            sent,
            settings.approval_stream_max_seconds,
        ),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


async def _raw(msg: StreamMessage[bytes]) -> bytes:
    return msg.body


def register_wakeups(broker: KafkaBroker, settings: ApprovalSettings, watchers: Watchers) -> None:
    """Other replicas' decisions wake this replica's waiters.

    No consumer group: every replica reads every decision from the end, commits nothing,
    and a message that is not a decision is only ignored (it is a hint; the store is the truth).
    """

    async def wake(body: bytes) -> None:
        try:
            correlation_id = json.loads(body).get("correlation_id")
        except (ValueError, AttributeError):
            return
        if isinstance(correlation_id, str):
            watchers.poke(correlation_id)

    broker.subscriber(
        settings.topics.approval_decided,
        group_id=None,
        auto_offset_reset="latest",
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        decoder=_raw,
    )(wake)
