"""Which agents live workers host: one document per worker, refreshed by its heartbeat.

A task for an agent no live worker hosts is not lost (it waits on Kafka for that
agent's consumer group) but it is made visible: its run says `unhosted`. Every worker
writes only its own document, so the read-then-write upsert of FerretDB 1.x is safe.
"""

import time
from datetime import datetime, timedelta

from hitl_contracts.base import utcnow
from hitl_shared.mongo import Document
from pymongo.asynchronous.database import AsyncDatabase

WORKERS = "agent_workers"


class WorkerRegistry:
    def __init__(
        self, db: AsyncDatabase[Document], *, stale_after: timedelta, cache_seconds: float = 1.0
    ) -> None:
        self.workers = db[WORKERS]
        self.stale_after = stale_after
        self.cache_seconds = cache_seconds
        self._cached: tuple[float, set[str], set[str]] | None = None

    async def beat(self, worker_id: str, agents: list[str], *, started_at: datetime) -> None:
        await self.workers.replace_one(
            {"_id": worker_id},
            {"_id": worker_id, "agents": agents, "seen_at": utcnow(), "started_at": started_at},
            upsert=True,
        )

    async def leave(self, worker_id: str) -> None:
        """A clean stop: its agents count as unhosted at once, not after `stale_after`."""
        await self.workers.update_one({"_id": worker_id}, {"$set": {"seen_at": None}})

    async def agents(self) -> tuple[set[str], set[str]]:
        """(agents some live worker hosts, agents any worker ever hosted)."""
        now = time.monotonic()
        if self._cached is not None and now - self._cached[0] < self.cache_seconds:
            return self._cached[1], self._cached[2]
        cutoff = utcnow() - self.stale_after
        live: set[str] = set()
        known: set[str] = set()
        async for doc in self.workers.find({}, {"agents": 1, "seen_at": 1}):
            names = {str(name) for name in doc.get("agents", [])}
            known |= names
            seen = doc.get("seen_at")
            if seen is not None and _aware(seen) >= cutoff:
                live |= names
        self._cached = (now, live, known)
        return live, known

    async def live_agents(self) -> set[str]:
        return (await self.agents())[0]


def _aware(value: datetime) -> datetime:
    # PyMongo returns naive UTC datetimes unless the client is tz-aware.
    return value if value.tzinfo is not None else value.replace(tzinfo=utcnow().tzinfo)
