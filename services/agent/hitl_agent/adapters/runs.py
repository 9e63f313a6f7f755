"""MongoDB store of runs: an append-only checkpoint stream per run, plus tool executions.

Each checkpoint is the whole run state after one step, with `_id`
`<run_id>:<seq:08d>`. Appending seq N+1 is a unique-key insert, the one
compare-and-swap that is atomic on MongoDB and FerretDB alike: of two replicas
that both read seq N, exactly one can store what happened next, and the other
learns it lost. The checkpoint also carries that step's lifecycle events and
approval requests (the outbox), so state and "what to tell the world" are never
separated by a crash.

Every read on a hot path is by `_id`: FerretDB 1.x answers those from its index
but scans the collection for anything else. So the latest state is found through
`runs` (one document per run: a copy of its latest checkpoint, used as a starting
point and checked by probing the next seq), undelivered outboxes through the small
`run_outbox` collection (a marker per checkpoint in flight), and runs that may need
rescuing through `run_active` (only runs queued or running).
"""

import contextlib
from datetime import datetime
from typing import Any

from hitl_contracts import RunEvent
from hitl_contracts.base import utcnow
from hitl_shared.mongo import Document, ensure_query_index, insert_once
from pymongo import DeleteOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from hitl_agent.domain.checkpoint import Checkpoint, EventPage, checkpoint_id
from hitl_agent.domain.run import Run, RunStatus

STEPS = "run_steps"
RUNS = "runs"
OUTBOX = "run_outbox"
ACTIVE = "run_active"
EXECUTIONS = "tool_executions"


class RunStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.db = db
        self.steps = db[STEPS]
        self.runs = db[RUNS]
        self.outbox = db[OUTBOX]
        self.active = db[ACTIVE]
        self.executions = db[EXECUTIONS]

    async def ensure_indexes(self) -> None:
        await ensure_query_index(self.runs, [("status", 1), ("updated_at", 1)])

    async def append(self, checkpoint: Checkpoint) -> bool:
        """Store the next checkpoint; False when another writer stored that seq first."""
        if checkpoint.has_outbox:
            # Before the checkpoint, so no stored checkpoint is ever without its marker.
            # A marker left by a writer that lost (or died) only causes a re-delivery,
            # which consumers de-duplicate by event_id.
            await insert_once(
                self.db,
                OUTBOX,
                {"_id": checkpoint.id, "run_id": checkpoint.run.run_id, "at": checkpoint.at},
            )
        return await insert_once(self.db, STEPS, checkpoint.to_document())

    async def project(self, run: Run) -> None:
        """Copy the run's latest state to `runs`, the starting point of `latest`.

        The caller projects where a run stops (paused, ended, queued), the states read
        again later, after the checkpoint is stored and its outbox on its way: nothing
        waits for it (`latest` probes forward from an older copy, and the relay
        re-projects what a crash left).

        By `_id` alone: on FerretDB 1.x any further condition (such as "only if newer")
        makes the write scan the collection. A slow writer may so land an older state
        over a newer one; `latest` probes forward by seq from it, so that costs reads,
        never correctness.
        """
        row = {
            "_id": run.run_id,
            "agent": run.agent,
            "status": run.status.value,
            "seq": run.seq,
            "created_at": run.created_at,
            "updated_at": run.updated_at,
            "state": run.model_dump(mode="python"),
        }
        with contextlib.suppress(DuplicateKeyError):  # two first upserts at once
            await self.runs.replace_one({"_id": run.run_id}, row, upsert=True)

    async def latest(self, run_id: str, known: Run | None = None) -> Run | None:
        """The run after its last stored step: from `known` (a stored step of it) or the
        projection, then forward by seq."""
        run = known
        if run is None:
            row = await self.runs.find_one({"_id": run_id}, {"state": 1})
            run = None if row is None else Run.model_validate(row["state"])
        seq = -1 if run is None else run.seq
        while True:
            doc = await self.steps.find_one({"_id": checkpoint_id(run_id, seq + 1)}, {"state": 1})
            if doc is None:
                return run
            run, seq = Run.model_validate(doc["state"]), seq + 1

    async def event_page(self, run_id: str, seq: int) -> EventPage | None:
        doc = await self.steps.find_one(
            {"_id": checkpoint_id(run_id, seq)}, {"events": 1, "state.status": 1}
        )
        if doc is None:
            return None
        return EventPage(
            events=[RunEvent.model_validate(e) for e in doc.get("events", [])],
            status=RunStatus(doc["state"]["status"]),
        )

    async def checkpoint(self, checkpoint_id_: str) -> Checkpoint | None:
        doc = await self.steps.find_one({"_id": checkpoint_id_})
        return None if doc is None else Checkpoint.from_document(doc)

    # The outbox: markers of checkpoints whose events are not all delivered yet.

    async def undelivered(self, before: datetime, limit: int = 100) -> list[Document]:
        found = self.outbox.find({"at": {"$lt": before}}).sort("at", 1).limit(limit)
        return [doc async for doc in found]

    async def mark_sent(self, checkpoint: Checkpoint) -> None:
        await self.outbox.update_one({"_id": checkpoint.id}, {"$set": {"sent": True}})

    async def delivered(self, checkpoint_id_: str) -> None:
        await self.outbox.delete_one({"_id": checkpoint_id_})

    async def delivered_many(self, checkpoint_ids: list[str]) -> None:
        # One delete statement by `_id` each (`$in` would scan on FerretDB 1.x), all
        # in one unordered `delete` command: one round trip, not one per marker.
        if checkpoint_ids:
            await self.outbox.bulk_write(
                [DeleteOne({"_id": id_}) for id_ in checkpoint_ids], ordered=False
            )

    # Runs queued or running, the only ones a dead worker could leave behind.

    async def set_active(self, run_id: str, since: datetime | None) -> None:
        """Mark a run in progress since `since`, or (None) no longer in progress."""
        if since is None:
            await self.active.delete_one({"_id": run_id})
            return
        with contextlib.suppress(DuplicateKeyError):
            await self.active.replace_one(
                {"_id": run_id}, {"_id": run_id, "since": since}, upsert=True
            )

    async def active_since(self, before: datetime, limit: int = 100) -> list[str]:
        found = self.active.find({"since": {"$lt": before}}, {"_id": 1}).limit(limit)
        return [str(doc["_id"]) async for doc in found]

    # Tool executions: claimed by one unique insert, finished by their owner only.

    async def claim_execution(self, key: str, *, tool: str, owner: str) -> bool:
        return await insert_once(
            self.db,
            EXECUTIONS,
            {"_id": key, "tool": tool, "owner": owner, "state": "running", "at": utcnow()},
        )

    async def record_execution(
        self, key: str, *, tool: str, owner: str, result: str, ok: bool
    ) -> None:
        """The outcome of an unclaimed (idempotent) call; a repeat's record is dropped."""
        at = utcnow()
        doc = {"_id": key, "tool": tool, "owner": owner, "state": "done", "at": at}
        await insert_once(self.db, EXECUTIONS, {**doc, "result": result, "ok": ok, "done_at": at})

    async def finish_execution(self, key: str, *, result: str, ok: bool) -> None:
        await self.executions.update_one(
            {"_id": key},
            {"$set": {"state": "done", "result": result, "ok": ok, "done_at": utcnow()}},
        )

    async def execution(self, key: str) -> dict[str, Any] | None:
        return await self.executions.find_one({"_id": key})
