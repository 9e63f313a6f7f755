"""MongoDB adapter of decision analytics: facts, the hourly rollup, shadow calls.

- `decision_facts`: one document per ended approval, `_id` = correlation id (a unique
  insert: recording a decision twice stores it once). Read by the what-if only.
- `decision_rollup`: cells of rollup rows, `_id` = `<hour>|<writer>|<n>`. A cell is
  written only by the process named in its id (its in-memory copy is the truth, so a
  write is a whole-document replace by `_id`, never a read-then-write that could lose a
  concurrent update on FerretDB). A cell lists the correlation ids it counts, which
  makes the rollup checkable and repairable. Analytics read only the cells of the
  hours asked for: the cost follows hours x writers, not decisions.
- `shadow_calls`: what shadow-mode candidates said about each tool call, `_id` =
  `<candidate>|<run_id>|<tool_call_id>` (a redelivered record is stored once).
"""

from datetime import datetime
from typing import Any

from hitl_shared.mongo import Document, ensure_query_index, insert_once
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from hitl_approval.adapters.repository import ARCHIVE, insert_new
from hitl_approval.adapters.storable import dumps, loads
from hitl_approval.domain.analytics import Fact, Row
from hitl_approval.domain.whatif import ShadowCall

FACTS = "decision_facts"
ROLLUP = "decision_rollup"
CLAIMS = "decision_rollup_claims"
SHADOW = "shadow_calls"


def _fact_doc(fact: Fact) -> Document:
    return {
        "_id": fact.correlation_id,
        "run_id": fact.run_id,
        "tool_call_id": fact.tool_call_id,
        "agent": fact.agent,
        "tool": fact.tool,
        "risk": fact.risk,
        "reviewer": fact.reviewer,
        "outcome": fact.outcome,
        "requested_at": fact.requested_at,
        "decided_at": fact.decided_at,
        "seconds": fact.seconds,
        "comment": fact.comment,
        # As JSON text: arguments may hold keys and numbers the store refuses.
        "arguments": dumps(fact.arguments),
    }


def _fact(doc: Document) -> Fact:
    return Fact(
        correlation_id=str(doc["_id"]),
        run_id=str(doc["run_id"]),
        tool_call_id=str(doc["tool_call_id"]),
        agent=str(doc["agent"]),
        tool=str(doc["tool"]),
        risk=str(doc["risk"]),
        reviewer=str(doc["reviewer"]),
        outcome=str(doc["outcome"]),
        requested_at=doc["requested_at"],
        decided_at=doc["decided_at"],
        seconds=float(doc["seconds"]),
        comment=str(doc["comment"]),
        arguments=loads(doc["arguments"]),
    )


def _shadow_doc(call: ShadowCall) -> Document:
    return {
        "_id": f"{call.candidate}|{call.run_id}|{call.tool_call_id}",
        "candidate": call.candidate,
        "agent": call.agent,
        "tool": call.tool,
        "run_id": call.run_id,
        "tool_call_id": call.tool_call_id,
        "arguments": dumps(call.arguments),
        "live_asked": call.live_asked,
        "shadow_asks": call.shadow_asks,
        "at": call.at,
    }


def _shadow(doc: Document) -> ShadowCall:
    return ShadowCall(
        candidate=str(doc["candidate"]),
        agent=str(doc["agent"]),
        tool=str(doc["tool"]),
        run_id=str(doc["run_id"]),
        tool_call_id=str(doc["tool_call_id"]),
        arguments=loads(doc["arguments"]),
        live_asked=bool(doc["live_asked"]),
        shadow_asks=bool(doc["shadow_asks"]),
        at=doc["at"],
    )


def _window(field: str, since: datetime, until: datetime) -> Document:
    return {field: {"$gte": since, "$lt": until}}


class AnalyticsStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.db = db
        self.facts = db[FACTS]
        self.rollup = db[ROLLUP]
        self.shadow = db[SHADOW]

    async def ensure_indexes(self) -> None:
        # Served on MongoDB; on FerretDB these filters scan (README states the cost).
        await ensure_query_index(self.rollup, [("hour", ASCENDING)], name="hour")
        await ensure_query_index(self.facts, [("decided_at", ASCENDING)], name="decided_at")
        await ensure_query_index(self.shadow, [("at", ASCENDING)], name="at")

    async def add_facts(self, facts: list[Fact]) -> None:
        """Store facts; one already stored (a repair, a retry) is kept as it was."""
        await insert_new(self.facts, [_fact_doc(f) for f in facts])

    async def write_cell(
        self, cell_id: str, hour: datetime, ids: list[str], rows: list[Row]
    ) -> None:
        doc = {
            "_id": cell_id,
            "hour": hour,
            "ids": ids,
            "rows": dumps([row.dump() for row in rows]),
        }
        await self.rollup.replace_one({"_id": cell_id}, doc, upsert=True)

    async def rows(self, since: datetime, until: datetime) -> list[Row]:
        """Every rollup row of the hours in [since, until)."""
        found = self.rollup.find(_window("hour", since, until), {"rows": 1})
        return [Row.load(raw) async for doc in found for raw in loads(doc["rows"])]

    async def counted_ids(self, since: datetime) -> set[str]:
        found = self.rollup.find({"hour": {"$gte": since}}, {"ids": 1})
        return {str(cid) async for doc in found for cid in doc["ids"]}

    async def fact_ids(self, since: datetime) -> set[str]:
        found = self.facts.find({"decided_at": {"$gte": since}}, {"_id": 1})
        return {str(doc["_id"]) async for doc in found}

    async def ended_between(self, since: datetime, before: datetime) -> list[str]:
        """Correlation ids of approvals that ended in [since, before) (a scan: start-up only)."""
        found = self.db[ARCHIVE].find(_window("decided_at", since, before), {"_id": 1})
        return [str(doc["_id"]) async for doc in found]

    async def claim(self, correlation_id: str) -> bool:
        """Whether this process may add a decision the rollup missed (one repairer wins)."""
        return await insert_once(self.db, CLAIMS, {"_id": correlation_id})

    async def facts_between(self, since: datetime, until: datetime) -> list[Fact]:
        return [_fact(doc) async for doc in self.facts.find(_window("decided_at", since, until))]

    async def add_shadow(self, calls: list[ShadowCall]) -> None:
        await insert_new(self.shadow, [_shadow_doc(c) for c in calls])

    async def shadow_between(
        self, since: datetime, until: datetime, candidate: str | None = None
    ) -> list[ShadowCall]:
        query: dict[str, Any] = _window("at", since, until)
        if candidate is not None:
            query["candidate"] = candidate
        return [_shadow(doc) async for doc in self.shadow.find(query)]
