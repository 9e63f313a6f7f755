"""MongoDB store of runs: an append-only checkpoint stream per run, plus tool executions.

Each checkpoint is the whole run state after one step, with `_id`
`<run_id>:<seq:08d>`. Appending seq N+1 is a unique-key insert, the one
compare-and-swap that is atomic on MongoDB and FerretDB alike: of two replicas
that both read seq N, exactly one can store what happened next, and the other
learns it lost. The checkpoint also carries that step's lifecycle events and
approval requests (the outbox), so state and "what to tell the world" are never
separated by a crash. `runs` is a listing projection, repaired on every commit.
"""

import contextlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hitl_shared.contracts import ApprovalRequested, RunEvent
from hitl_shared.mongo import Document, insert_once
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from hitl_agent.domain.run import Run, RunStatus, utcnow

STEPS = "run_steps"
RUNS = "runs"
EXECUTIONS = "tool_executions"


@dataclass(frozen=True)
class CancelOrder:
    """Ask the approval service to cancel an approval whose run was cancelled."""

    correlation_id: str
    comment: str


@dataclass
class Checkpoint:
    run: Run
    events: list[RunEvent] = field(default_factory=list)
    requests: list[ApprovalRequested] = field(default_factory=list)
    cancels: list[CancelOrder] = field(default_factory=list)
    # Events and requests are on Kafka.
    sent: bool = False
    # Everything is delivered, cancellations included.
    published: bool = False
    at: datetime = field(default_factory=utcnow)

    @property
    def id(self) -> str:
        return checkpoint_id(self.run.run_id, self.run.seq)

    @property
    def first_event(self) -> int:
        return self.run.events - len(self.events) + 1

    @property
    def has_outbox(self) -> bool:
        return bool(self.events or self.requests or self.cancels)

    def to_document(self) -> Document:
        return {
            "_id": self.id,
            "run_id": self.run.run_id,
            "seq": self.run.seq,
            "state": self.run.model_dump(mode="python"),
            "events": [e.model_dump(mode="json") for e in self.events],
            "last_event": self.run.events,
            "requests": [r.model_dump(mode="json") for r in self.requests],
            "cancels": [
                {"correlation_id": c.correlation_id, "comment": c.comment} for c in self.cancels
            ],
            "sent": self.sent or not (self.events or self.requests),
            "published": self.published or not self.has_outbox,
            "at": self.at,
        }

    @classmethod
    def from_document(cls, doc: Document) -> "Checkpoint":
        return cls(
            run=Run.model_validate(doc["state"]),
            events=[RunEvent.model_validate(e) for e in doc.get("events", [])],
            requests=[ApprovalRequested.model_validate(r) for r in doc.get("requests", [])],
            cancels=[CancelOrder(**c) for c in doc.get("cancels", [])],
            sent=bool(doc.get("sent")),
            published=bool(doc.get("published")),
            at=doc["at"],
        )


def checkpoint_id(run_id: str, seq: int) -> str:
    return f"{run_id}:{seq:08d}"


class RunStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.db = db
        self.steps = db[STEPS]
        self.runs = db[RUNS]
        self.executions = db[EXECUTIONS]

    async def ensure_indexes(self) -> None:
        await self.steps.create_index([("run_id", 1), ("seq", 1)])
        await self.steps.create_index("published")
        await self.runs.create_index([("status", 1), ("updated_at", 1)])

    async def append(self, checkpoint: Checkpoint) -> bool:
        """Store the next checkpoint; False when another writer stored that seq first."""
        if not await insert_once(self.db, STEPS, checkpoint.to_document()):
            return False
        await self.project(checkpoint.run)
        return True

    async def project(self, run: Run) -> None:
        """Best-effort listing row; only ever moves forward in seq."""
        row = {
            "_id": run.run_id,
            "agent": run.agent,
            "status": run.status.value,
            "seq": run.seq,
            "created_at": run.created_at,
            "updated_at": run.updated_at,
        }
        # DuplicateKeyError: a newer checkpoint is already projected.
        with contextlib.suppress(DuplicateKeyError):
            await self.runs.replace_one(
                {"_id": run.run_id, "seq": {"$lt": run.seq}}, row, upsert=True
            )

    async def latest(self, run_id: str) -> Run | None:
        doc = await self.steps.find_one({"run_id": run_id}, {"state": 1}, sort=[("seq", -1)])
        return None if doc is None else Run.model_validate(doc["state"])

    async def events_after(
        self, run_id: str, after: int
    ) -> tuple[list[RunEvent], RunStatus | None]:
        """Events numbered above `after`, in order, and the run's status as of the last of
        them (or, with no new events, its latest status)."""
        latest = await self.steps.find_one(
            {"run_id": run_id}, {"state.status": 1}, sort=[("seq", -1)]
        )
        status = None if latest is None else RunStatus(latest["state"]["status"])
        events: list[RunEvent] = []
        found = self.steps.find(
            {"run_id": run_id, "last_event": {"$gt": after}},
            {"events": 1, "last_event": 1, "state.status": 1},
        ).sort("seq", 1)
        async for doc in found:
            number = int(doc["last_event"]) - len(doc["events"])
            for raw in doc["events"]:
                number += 1
                if number > after:
                    events.append(RunEvent.model_validate(raw))
            # Read after `latest`, so possibly newer: the status that goes with these events.
            status = RunStatus(doc["state"]["status"])
        return events, status

    async def unpublished(self, before: datetime, limit: int = 100) -> list[Checkpoint]:
        found = self.steps.find({"published": False, "at": {"$lt": before}}).sort(
            [("run_id", 1), ("seq", 1)]
        )
        return [Checkpoint.from_document(doc) async for doc in found.limit(limit)]

    async def mark_sent(self, checkpoint: Checkpoint) -> None:
        await self.steps.update_one({"_id": checkpoint.id}, {"$set": {"sent": True}})

    async def mark_published(self, checkpoint: Checkpoint) -> None:
        await self.steps.update_one(
            {"_id": checkpoint.id}, {"$set": {"sent": True, "published": True}}
        )

    async def stalled(self, before: datetime, limit: int = 100) -> list[str]:
        """Runs the projection shows as in progress but untouched since `before`."""
        found = self.runs.find(
            {
                "status": {"$in": [RunStatus.QUEUED.value, RunStatus.RUNNING.value]},
                "updated_at": {"$lt": before},
            },
            {"_id": 1},
        ).limit(limit)
        return [str(doc["_id"]) async for doc in found]

    # Tool executions: claimed by one unique insert, finished by their owner only.

    async def claim_execution(self, key: str, *, tool: str, owner: str) -> bool:
        return await insert_once(
            self.db,
            EXECUTIONS,
            {"_id": key, "tool": tool, "owner": owner, "state": "running", "at": utcnow()},
        )

    async def finish_execution(self, key: str, *, result: str, ok: bool) -> None:
        await self.executions.update_one(
            {"_id": key},
            {"$set": {"state": "done", "result": result, "ok": ok, "done_at": utcnow()}},
        )

    async def execution(self, key: str) -> dict[str, Any] | None:
        return await self.executions.find_one({"_id": key})
