"""All runs at once: `GET /v1/runs` (a page of recent runs), `GET /v1/run-events` (live).

`read`, `operate` and `reviewer` principals see every run; anyone else only the runs
they submitted. Both filter by agent and status. The live stream starts at "now";
a page that reconnects reloads the list first, so nothing falls between them.
"""

import asyncio
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent
from hitl_contracts.identity import same_identity
from hitl_shared.directory import Principal
from pydantic import BaseModel, Field

from hitl_agent.adapters.live import LiveEvent, RunFeed
from hitl_agent.adapters.run_rows import RunRow
from hitl_agent.domain.cost import PriceTable, loop_prevented
from hitl_agent.domain.run import RunStatus, Usage
from hitl_agent.entrypoints.api import READ_ALL, ViewsDep, bounded
from hitl_agent.entrypoints.oversight import Actor

router = APIRouter(tags=["oversight"])

RETRY_MS = 1_000
HEARTBEAT_SECONDS = 15.0
# Non-terminal runs in a page are checked against their checkpoints (the projection
# is written only where a run stops, so it may still say `queued` or `awaiting`).
REFRESH_AT_MOST = 200


def sees_all(principal: Principal) -> bool:
    return any(principal.can(role) for role in READ_ALL)


def visible(principal: Principal, submitted_by: str) -> bool:
    return sees_all(principal) or (
        bool(submitted_by) and same_identity(principal.name, submitted_by)
    )


class RunListItem(BaseModel):
    run_id: str
    agent: str
    submitted_by: str
    status: RunStatus
    input: str = Field(description="The task, cut to 200 characters.")
    steps: int
    usage: Usage
    cost: float = Field(description="Tokens priced with the price table (AGENT_PRICES).")
    currency: str
    loop_prevented: str | None = Field(
        description="guard / interrupt: a person stopped the run when it paused"
    )
    error: str | None
    created_at: datetime
    updated_at: datetime


class RunList(BaseModel):
    items: list[RunListItem]
    halted_agents: list[str]


def prices(request: Request) -> PriceTable:
    table: PriceTable = request.app.state.prices
    return table


Prices = Annotated[PriceTable, Depends(prices)]


def item_of(row: RunRow, table: PriceTable) -> RunListItem:
    return RunListItem(
        run_id=row.run_id,
        agent=row.agent,
        submitted_by=row.submitted_by,
        status=row.status,
        input=row.input[:200],
        steps=row.steps,
        usage=row.usage,
        cost=table.cost(row.agent, row.usage),
        currency=table.currency,
        loop_prevented=loop_prevented(row.pending),
        error=row.error,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


@router.get("/v1/runs", response_model=RunList)
async def list_runs(
    request: Request,
    actor: Actor,
    views: ViewsDep,
    table: Prices,
    agent: Annotated[str | None, Query(max_length=200)] = None,
    status: Annotated[list[RunStatus] | None, Query()] = None,
    since: Annotated[datetime | None, Query(description="Updated at or after.")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> RunList:
    """Recent runs, newest first: running, paused and recently ended, with their cost."""
    rows = await bounded(views.recent(agent=agent, since=since, limit=limit * 2))
    rows = [r for r in rows if visible(actor, r.submitted_by)]
    stale = [r for r in rows if not r.status.terminal][:REFRESH_AT_MOST]
    latest = await views.runs_now([r.run_id for r in stale])
    for row, run in zip(stale, latest, strict=True):
        if run is not None:
            row.status, row.steps, row.usage = run.status, run.steps, run.usage
            row.pending, row.error, row.updated_at = run.pending, run.error, run.updated_at
    wanted = set(status or [])
    items = [item_of(r, table) for r in rows if not wanted or r.status in wanted][:limit]
    halts = await bounded(views.halts())
    return RunList(items=items, halted_agents=sorted(h.agent for h in halts))


@router.get(
    "/v1/run-events",
    response_class=EventSourceResponse,
    responses={
        200: {
            "description": "One event per run lifecycle event (`run`): run_id, agent, "
            "submitted_by, type, status (after the event), seq, occurred_at, detail."
        }
    },
)
async def run_events(
    request: Request,
    actor: Actor,
    agent: Annotated[str | None, Query(max_length=200)] = None,
    status: Annotated[list[RunStatus] | None, Query()] = None,
) -> AsyncIterator[ServerSentEvent]:
    """Every run's lifecycle events as they happen (Server-Sent Events)."""
    feed: RunFeed = request.app.state.run_feed
    settings = request.app.state.settings
    wanted = set(status or [])
    queue = await feed.subscribe()
    deadline = time.monotonic() + settings.agent_sse_max_seconds
    try:
        yield ServerSentEvent(retry=RETRY_MS, comment="all runs")
        while time.monotonic() < deadline:
            try:
                live: LiveEvent = await asyncio.wait_for(queue.get(), HEARTBEAT_SECONDS)
            except TimeoutError:
                if await request.is_disconnected():
                    return
                yield ServerSentEvent(comment="keep-alive")
                continue
            if agent and live.agent != agent:
                continue
            if wanted and live.status not in wanted:
                continue
            if not visible(actor, live.submitted_by):
                continue
            yield ServerSentEvent(event="run", data=live.payload(), id=str(live.event.event_id))
    finally:
        feed.unsubscribe(queue)
