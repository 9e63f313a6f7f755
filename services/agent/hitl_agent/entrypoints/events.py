"""`GET /v1/runs/{run_id}/events`: a run's lifecycle as Server-Sent Events, from the store.

Every event has a number (its `id:`); a client that reconnects with `Last-Event-ID`
(or `?after=`) gets the rest. A connection ends cleanly once the run pauses for
approval (`approval_required`) or ends; reconnecting while it is still paused waits
for the decision. Events are read from the checkpoint stream, so any replica can
serve any run, before or after a restart.
"""

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent
from hitl_contracts import RunEvent, RunEventType

from hitl_agent.domain.run import RunStatus
from hitl_agent.entrypoints.api import NOT_FOUND, RunDep, ViewsDep

router = APIRouter(tags=["runs"])

# Clients wait this long before reconnecting after a closed stream.
RETRY_MS = 1_000


def sse_name(type_: RunEventType) -> str:
    return "approval_required" if type_ is RunEventType.AWAITING_APPROVAL else type_.value


def payload(event: RunEvent) -> dict[str, Any]:
    return {
        "seq": event.seq,
        "type": sse_name(event.type),
        "run_id": event.run_id,
        "event_id": str(event.event_id),
        "occurred_at": event.occurred_at.isoformat(),
        "detail": event.detail,
    }


def _start_after(after: int | None, last_event_id: str | None) -> int:
    if after is not None:
        return after
    try:
        return max(0, int(last_event_id or 0))
    except ValueError:
        return 0


@router.get(
    "/v1/runs/{run_id}/events",
    response_class=EventSourceResponse,
    responses={
        **NOT_FOUND,
        200: {
            "description": "Events named started, model_replied, tool_executed, "
            "approval_required, decision_applied, resumed, completed, failed, cancelled."
        },
    },
)
async def run_events(
    run: RunDep,
    views: ViewsDep,
    request: Request,
    last_event_id: Annotated[str | None, Header()] = None,
    after: Annotated[int | None, Query(ge=0, description="Same as Last-Event-ID.")] = None,
) -> AsyncIterator[ServerSentEvent]:
    settings = request.app.state.settings
    last = _start_after(after, last_event_id)
    deadline = time.monotonic() + settings.agent_sse_max_seconds
    seq, status, sent = 0, run.status, False
    yield ServerSentEvent(retry=RETRY_MS, comment=f"run {run.run_id}")
    while True:
        # Checkpoints are read one by one by id (cheap on FerretDB); each page's status
        # is the run's as of its events, so a pause or an end is acted on only once
        # its event has been sent.
        page = await views.event_page(run.run_id, seq)
        if page is not None:
            seq, status = seq + 1, page.status
            for event in page.events:
                if event.seq is not None and event.seq > last:
                    yield ServerSentEvent(
                        id=str(event.seq), event=sse_name(event.type), data=payload(event)
                    )
                    last, sent = event.seq, True
            continue
        if status.terminal or (status is RunStatus.AWAITING_APPROVAL and sent):
            return
        if time.monotonic() > deadline or await request.is_disconnected():
            return
        await asyncio.sleep(settings.agent_sse_poll_seconds)
