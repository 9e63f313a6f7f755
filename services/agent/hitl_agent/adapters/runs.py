"""MongoDB repository of runs, tool executions and resume claims."""

from typing import Any

from hitl_shared.mongo import Document, insert_once
from pymongo.asynchronous.database import AsyncDatabase

from hitl_agent.domain.run import Run, RunStatus, utcnow

RUNS = "runs"
CLAIMS = "run_claims"
EXECUTIONS = "tool_executions"


class StaleRun(Exception):
    """Someone saved the run since it was loaded."""


class RunRepository:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.db = db
        self.runs = db[RUNS]

    async def ensure_indexes(self) -> None:
        await self.runs.create_index("status")
        await self.runs.create_index("pending.correlation_id")

    async def create(self, run: Run) -> bool:
        return await insert_once(
            self.db, RUNS, {"_id": run.run_id, **run.model_dump(mode="python")}
        )

    async def get(self, run_id: str) -> Run | None:
        doc = await self.runs.find_one({"_id": run_id})
        return None if doc is None else Run.model_validate(doc)

    async def save(self, run: Run) -> None:
        expected = run.version
        run.version += 1
        run.updated_at = utcnow()
        result = await self.runs.replace_one(
            {"_id": run.run_id, "version": expected}, {"_id": run.run_id, **run.model_dump()}
        )
        if result.matched_count == 0:
            run.version = expected
            raise StaleRun(f"run {run.run_id} changed since version {expected}")

    async def claim(self, key: str, **detail: Any) -> bool:
        """True for exactly one caller per key (unique-key insert)."""
        return await insert_once(self.db, CLAIMS, {"_id": key, "at": utcnow(), **detail})

    async def execution(self, key: str) -> Document | None:
        return await self.db[EXECUTIONS].find_one({"_id": key})

    async def record_execution(self, key: str, *, tool: str, result: str, ok: bool) -> bool:
        return await insert_once(
            self.db,
            EXECUTIONS,
            {"_id": key, "tool": tool, "result": result, "ok": ok, "at": utcnow()},
        )

    async def with_unpublished_requests(self) -> list[Run]:
        found = self.runs.find(
            {"status": RunStatus.AWAITING_APPROVAL.value, "pending.published": False}
        )
        return [Run.model_validate(doc) async for doc in found]
