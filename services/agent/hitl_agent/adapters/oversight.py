"""MongoDB store of oversight: interrupt flags, agent halts, halted runs, the audit log.

The flags are what every worker checks at each step boundary, so they are read by
`_id` alone (run id, agent name): FerretDB 1.x answers those from its index. The
collections stay small: one flag per interrupted run, one document per halted agent,
one per run paused by a halt (removed when it goes on).
"""

import contextlib
import uuid
from typing import Any

from hitl_contracts.base import utcnow
from hitl_shared.mongo import Document, insert_once
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from hitl_agent.domain.oversight import AuditEntry, Halt, Interrupt, InterruptState

INTERRUPTS = "run_interrupts"
HALTS = "agent_halts"
HALTED_RUNS = "halted_runs"
AUDIT = "oversight_audit"


class OversightStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.db = db
        self.interrupts = db[INTERRUPTS]
        self.halts = db[HALTS]
        self.halted_runs = db[HALTED_RUNS]
        self.audit_log = db[AUDIT]

    # Interrupts: one flag per run, replaced by a later interrupt once settled.

    async def interrupt(self, run_id: str) -> Interrupt | None:
        doc = await self.interrupts.find_one({"_id": run_id})
        return None if doc is None else Interrupt.model_validate(_without_id(doc))

    async def request_interrupt(self, flag: Interrupt) -> tuple[Interrupt, bool]:
        """Store the flag; (the flag in force, whether this call stored it).

        A flag still `requested` stays (a second interrupt adds nothing); a settled one
        (the run paused, or ended first) is replaced, so a run can be interrupted again.
        """
        doc = {"_id": flag.run_id, **flag.model_dump(mode="python")}
        if await insert_once(self.db, INTERRUPTS, doc):
            return flag, True
        current = await self.interrupt(flag.run_id)
        if current is not None and current.state is InterruptState.REQUESTED:
            return current, False
        await self.interrupts.replace_one({"_id": flag.run_id}, doc, upsert=True)
        return flag, True

    async def settle_interrupt(
        self, run_id: str, interrupt_id: str, state: InterruptState, **fields: Any
    ) -> None:
        """Record what became of the flag `interrupt_id` (not of a newer one)."""
        current = await self.interrupt(run_id)
        if current is None or current.id != interrupt_id:
            return
        await self.interrupts.update_one(
            {"_id": run_id},
            {"$set": {"state": state.value, "settled_at": utcnow(), **fields}},
        )

    # Halts: a document per halted agent; its absence means the agent runs.

    async def halt(self, agent: str) -> Halt | None:
        doc = await self.halts.find_one({"_id": agent})
        return None if doc is None else Halt.model_validate(_without_id(doc))

    async def set_halt(self, halt: Halt) -> tuple[Halt, bool]:
        """Halt the agent; (the halt in force, whether this call set it)."""
        if await insert_once(self.db, HALTS, {"_id": halt.agent, **halt.model_dump()}):
            return halt, True
        current = await self.halt(halt.agent)
        return (current or halt), False

    async def lift_halt(self, agent: str) -> bool:
        result = await self.halts.delete_one({"_id": agent})
        return result.deleted_count > 0

    async def all_halts(self) -> list[Halt]:
        return [Halt.model_validate(_without_id(doc)) async for doc in self.halts.find({})]

    async def index_halted(self, run_id: str, agent: str) -> None:
        with contextlib.suppress(DuplicateKeyError):
            await self.halted_runs.replace_one(
                {"_id": run_id}, {"_id": run_id, "agent": agent, "at": utcnow()}, upsert=True
            )

    async def halted_of(self, agent: str, limit: int = 10_000) -> list[str]:
        found = self.halted_runs.find({"agent": agent}, {"_id": 1}).limit(limit)
        return [str(doc["_id"]) async for doc in found]

    async def unindex_halted(self, run_id: str) -> None:
        await self.halted_runs.delete_one({"_id": run_id})

    # The audit log: insert-only.

    async def audit(self, entry: AuditEntry) -> None:
        await self.audit_log.insert_one({"_id": str(uuid.uuid4()), **entry.model_dump()})

    async def audit_of(self, agent: str, limit: int = 50) -> list[AuditEntry]:
        found = self.audit_log.find({"agent": agent}).sort("at", -1).limit(limit)
        return [AuditEntry.model_validate(_without_id(doc)) async for doc in found]


def _without_id(doc: Document) -> Document:
    return {k: v for k, v in doc.items() if k != "_id"}
