"""What runs cost: `GET /v1/runs/{run_id}/cost`, `GET /v1/costs` (per agent), /metrics.

Tokens are counted at every model reply (`Run.usage`); the price table turns them
into money. A run a person stopped when a guard or an interrupt paused it counts as
a loop prevented.
"""

import time
from collections.abc import Callable
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from prometheus_client import CollectorRegistry, Gauge
from pydantic import BaseModel, Field

from hitl_agent.adapters.run_rows import RunRows
from hitl_agent.domain.cost import PriceTable, loop_prevented
from hitl_agent.domain.run import Usage
from hitl_agent.entrypoints.api import ViewsDep, bounded
from hitl_agent.entrypoints.live import Prices, visible
from hitl_agent.entrypoints.oversight import Actor, ActorRun
from hitl_agent.views import RowReads

router = APIRouter(tags=["oversight"])

# Runs one cost query reads at most (the projection is scanned).
SCAN_LIMIT = 100_000


class RunCost(BaseModel):
    run_id: str
    agent: str
    usage: Usage
    cost: float
    currency: str
    loop_prevented: str | None = Field(description="guard / interrupt, or null")


class AgentCost(BaseModel):
    agent: str
    runs: int
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    cost: float = 0.0
    currency: str
    loops_prevented: int = 0
    loops_prevented_by: dict[str, int] = Field(default_factory=dict)


@router.get("/v1/runs/{run_id}/cost", response_model=RunCost)
async def run_cost(run: ActorRun, table: Prices) -> RunCost:
    return RunCost(
        run_id=run.run_id,
        agent=run.agent,
        usage=run.usage,
        cost=table.cost(run.agent, run.usage),
        currency=table.currency,
        loop_prevented=loop_prevented(run.pending),
    )


async def per_agent(
    rows_store: RowReads,
    table: PriceTable,
    *,
    agent: str | None = None,
    since: datetime | None = None,
    keep: Callable[[str], bool] | None = None,
) -> list[AgentCost]:
    """Cost per agent over the projection (runs as of where they last stopped)."""
    totals: dict[str, AgentCost] = {}
    for row in await rows_store.recent(agent=agent, since=since, limit=SCAN_LIMIT):
        if keep is not None and not keep(row.submitted_by):
            continue
        item = totals.setdefault(
            row.agent, AgentCost(agent=row.agent, runs=0, currency=table.currency)
        )
        item.runs += 1
        item.prompt_tokens += row.usage.prompt_tokens
        item.completion_tokens += row.usage.completion_tokens
        item.total_tokens += row.usage.total_tokens
        item.cost = round(item.cost + table.cost(row.agent, row.usage), 6)
        if (why := loop_prevented(row.pending)) is not None:
            item.loops_prevented += 1
            item.loops_prevented_by[why] = item.loops_prevented_by.get(why, 0) + 1
    return sorted(totals.values(), key=lambda c: c.agent)


@router.get("/v1/costs", response_model=list[AgentCost])
async def costs(
    views: ViewsDep,
    actor: Actor,
    table: Prices,
    agent: Annotated[str | None, Query(max_length=200)] = None,
    since: Annotated[datetime | None, Query(description="Runs updated at or after.")] = None,
) -> list[AgentCost]:
    """Tokens, money and loops prevented per agent (a submitter: over their own runs)."""
    return await bounded(
        per_agent(views, table, agent=agent, since=since, keep=lambda who: visible(actor, who))
    )


class CostMetrics:
    """Per-agent cost gauges, read from the store at most every `ttl` seconds."""

    def __init__(
        self, registry: CollectorRegistry, rows: RunRows, table: PriceTable, *, ttl: float
    ) -> None:
        self.rows, self.table, self.ttl = rows, table, ttl
        self.read_at = 0.0
        self.cost = Gauge(
            "hitl_agent_runs_cost",
            f"Money the agent's stored runs spent on the model ({table.currency}).",
            ["agent"],
            registry=registry,
        )
        self.tokens = Gauge(
            "hitl_agent_runs_tokens",
            "Tokens of the agent's stored runs.",
            ["agent"],
            registry=registry,
        )
        self.loops = Gauge(
            "hitl_agent_loops_prevented",
            "Runs a person stopped when a guard or an interrupt paused them, by cause.",
            ["agent", "cause"],
            registry=registry,
        )

    async def refresh(self) -> None:
        if time.monotonic() - self.read_at < self.ttl:
            return
        self.read_at = time.monotonic()
        for item in await per_agent(self.rows, self.table):
            self.cost.labels(agent=item.agent).set(item.cost)
            self.tokens.labels(agent=item.agent).set(item.total_tokens)
            for cause in ("guard", "interrupt"):
                count = item.loops_prevented_by.get(cause, 0)
                self.loops.labels(agent=item.agent, cause=cause).set(count)
