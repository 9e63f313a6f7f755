"""Reading many runs at once from the `runs` projection (the live page, the cost figures).

These scan (FerretDB 1.x uses an index for `_id` alone), so they read only the
fields they need and stay off every hot path: page loads, cost queries, /metrics
at most every AGENT_COST_METRICS_SECONDS.
"""

from datetime import datetime
from typing import Any

from hitl_shared.mongo import Document
from pymongo.asynchronous.database import AsyncDatabase

from hitl_agent.adapters.runs import RUNS
from hitl_agent.domain.run import PendingCall, RunStatus, Usage

FIELDS = {
    "agent": 1,
    "status": 1,
    "created_at": 1,
    "updated_at": 1,
    "state.submitted_by": 1,
    "state.input": 1,
    "state.steps": 1,
    "state.usage": 1,
    "state.error": 1,
    "state.pending": 1,
}


class RunRow:
    """A run as lists show it (no message history)."""

    def __init__(self, doc: Document) -> None:
        state: dict[str, Any] = doc.get("state") or {}
        self.run_id = str(doc["_id"])
        self.agent = str(doc.get("agent", ""))
        self.status = RunStatus(doc.get("status", RunStatus.QUEUED.value))
        self.created_at: datetime = doc["created_at"]
        self.updated_at: datetime = doc["updated_at"]
        self.submitted_by = str(state.get("submitted_by", ""))
        self.input = str(state.get("input", ""))
        self.steps = int(state.get("steps", 0))
        self.usage = Usage.model_validate(state.get("usage") or {})
        self.error = state.get("error")
        self.pending = [PendingCall.model_validate(p) for p in state.get("pending") or []]


class RunRows:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.runs = db[RUNS]

    async def recent(
        self, *, agent: str | None = None, since: datetime | None = None, limit: int = 200
    ) -> list[RunRow]:
        query: dict[str, Any] = {}
        if agent:
            query["agent"] = agent
        if since is not None:
            query["updated_at"] = {"$gte": since}
        found = self.runs.find(query, FIELDS).sort("updated_at", -1).limit(limit)
        return [RunRow(doc) async for doc in found]
