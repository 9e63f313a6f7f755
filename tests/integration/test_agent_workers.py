"""The worker registry on a real MongoDB-compatible store: live, stale and stopped workers."""

import asyncio
from datetime import timedelta

from hitl_agent.adapters.workers import WorkerRegistry
from hitl_contracts.base import utcnow

from tests.integration.conftest import Database


async def test_live_agents_are_those_of_workers_heard_from_lately(db: Database) -> None:
    registry = WorkerRegistry(db, stale_after=timedelta(seconds=1), cache_seconds=0)
    started = utcnow()
    await registry.beat("w-demo", ["banking", "files"], started_at=started)
    await registry.beat("w-invoices", ["invoices"], started_at=started)
    assert await registry.agents() == ({"banking", "files", "invoices"},) * 2

    await registry.leave("w-invoices")  # a clean stop counts at once
    assert await registry.agents() == (
        {"banking", "files"},
        {"banking", "files", "invoices"},
    )

    await asyncio.sleep(1.2)  # a killed worker counts once it has been silent long enough
    await registry.beat("w-invoices", ["invoices"], started_at=utcnow())
    assert await registry.live_agents() == {"invoices"}
