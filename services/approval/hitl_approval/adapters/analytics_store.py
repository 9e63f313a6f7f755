"""MongoDB adapter of decision analytics: the daily rollup cells, and shadow calls.

- `decision_rollup`: the ended approvals packed into *cells*, `_id` = `<day>|<slot>`
  (UTC day of the decision, slot 0, 1, ...). A replica claims a slot with a unique
  insert (the lowest free one, so slots have no gaps) and is then its only writer: it
  keeps the cell in memory and replaces the whole document by `_id`, never a
  read-then-write that FerretDB could interleave. A cell lists the correlation ids it
  holds (a decision is counted once, and the rollup can be checked). Readers fetch a
  day's cells by `_id` (0, 1, ... until a miss), the one lookup FerretDB serves from
  an index: a report costs the days of its window, not the size of the history.
- `decision_rollup_writers`: replicas that write cells; a replica that did not stop
  cleanly is found here at the next start-up, and only then is the store searched for
  decisions its crash kept out of the rollup.
- `shadow_calls`: what shadow-mode candidates said about each tool call, `_id` =
  `<candidate>|<run_id>|<tool_call_id>` (a redelivered record is stored once).
"""

import asyncio
from datetime import date, datetime
from typing import Any

from hitl_shared.mongo import Document, ensure_query_index, insert_once
from pymongo import ASCENDING
from pymongo.asynchronous.database import AsyncDatabase

from hitl_approval.adapters.repository import ARCHIVE, insert_new
from hitl_approval.adapters.storable import dumps, loads
from hitl_approval.domain.analytics import Fact, Row, rows_of_packed
from hitl_approval.domain.whatif import ShadowCall

ROLLUP = "decision_rollup"
WRITERS = "decision_rollup_writers"
CLAIMS = "decision_rollup_claims"
SHADOW = "shadow_calls"
# A day with more cells than this is not read further (a bound on a hostile store).
MAX_SLOTS = 10_000


def cell_id(day: date, slot: int) -> str:
    return f"{day.isoformat()}|{slot}"


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
        self.rollup = db[ROLLUP]
        self.writers = db[WRITERS]
        self.shadow = db[SHADOW]

    async def ensure_indexes(self) -> None:
        # Served on MongoDB; on FerretDB this filter scans (shadow mode is opt-in).
        await ensure_query_index(self.shadow, [("at", ASCENDING)], name="at")

    async def claim_slot(self, day: date, writer: str, start: int = 0) -> int:
        """The lowest free slot of `day` from `start`, now this writer's."""
        slot = start
        while not await insert_once(
            self.db,
            ROLLUP,
            {
                "_id": cell_id(day, slot),
                "day": day.isoformat(),
                "writer": writer,
                "ids": [],
                "facts": "[]",
            },
        ):
            slot += 1
        return slot

    async def write_cell(self, day: date, slot: int, writer: str, facts: list[Fact]) -> None:
        # The extra part first: a reader that finds a cell finds its extra part too.
        base = cell_id(day, slot)
        extra = {"_id": f"{base}|extra", "extra": dumps([f.packed_extra() for f in facts])}
        await self.rollup.replace_one({"_id": extra["_id"]}, extra, upsert=True)
        doc = {
            "_id": base,
            "day": day.isoformat(),
            "writer": writer,
            "ids": [f.correlation_id for f in facts],
            # As JSON text: one string decodes much faster than nested documents, and
            # arguments may hold keys and numbers the store refuses.
            "facts": dumps([f.packed() for f in facts]),
        }
        await self.rollup.replace_one({"_id": base}, doc, upsert=True)

    async def _cells(self, days: list[date], fields: dict[str, int]) -> list[Document]:
        """The cells of these days: slot 0 of every day at once, then slot 1 of the days
        that had a slot 0, and so on (round trips follow the fullest day, not the days)."""
        found: list[Document] = []
        open_days = list(days)
        for slot in range(MAX_SLOTS):
            if not open_days:
                break
            docs = await asyncio.gather(
                *(self.rollup.find_one({"_id": cell_id(day, slot)}, fields) for day in open_days)
            )
            found += [doc for doc in docs if doc is not None]
            open_days = [day for day, doc in zip(open_days, docs, strict=True) if doc is not None]
        return found

    async def rows(self, days: list[date], since: datetime, until: datetime) -> list[Row]:
        """The rollup rows of the ended approvals decided in [since, until)."""
        cells = await self._cells(days, {"facts": 1})
        packed = (p for doc in cells for p in loads(doc["facts"]))
        return rows_of_packed(packed, since.timestamp(), until.timestamp())

    async def facts(self, days: list[date]) -> list[Fact]:
        """Every ended approval the rollup holds for these days, arguments included."""
        found = []
        for doc in await self._cells(days, {"facts": 1}):
            extra = await self.rollup.find_one({"_id": f"{doc['_id']}|extra"})
            extras = loads(extra["extra"]) if extra else []
            packed = loads(doc["facts"])
            # A cell written before its extra part was (a crash in between): skip the rest.
            found += [Fact.unpack(p, e) for p, e in zip(packed, extras, strict=False)]
        return found

    async def counted_ids(self, days: list[date]) -> set[str]:
        cells = await self._cells(days, {"ids": 1})
        return {str(cid) for doc in cells for cid in doc["ids"]}

    async def register(self, writer: str, now: datetime) -> None:
        await self.writers.replace_one({"_id": writer}, {"_id": writer, "at": now}, upsert=True)

    async def known_writers(self) -> set[str]:
        return {str(doc["_id"]) async for doc in self.writers.find({}, {"_id": 1})}

    async def forget_writer(self, writer: str) -> None:
        await self.writers.delete_one({"_id": writer})

    async def ended_between(self, since: datetime, before: datetime) -> list[str]:
        """Correlation ids of approvals that ended in [since, before) (a scan: repair only)."""
        found = self.db[ARCHIVE].find(_window("decided_at", since, before), {"_id": 1})
        return [str(doc["_id"]) async for doc in found]

    async def claim(self, correlation_id: str) -> bool:
        """Whether this process may add a decision the rollup missed (one repairer wins)."""
        return await insert_once(self.db, CLAIMS, {"_id": correlation_id})

    async def add_shadow(self, calls: list[ShadowCall]) -> None:
        await insert_new(self.shadow, [_shadow_doc(c) for c in calls])

    async def shadow_between(
        self, since: datetime, until: datetime, candidate: str | None = None
    ) -> list[ShadowCall]:
        query: dict[str, Any] = _window("at", since, until)
        if candidate is not None:
            query["candidate"] = candidate
        return [_shadow(doc) async for doc in self.shadow.find(query)]
