"""MongoDB repository: approval streams (truth) and a listing projection.

`approval_events` holds one document per stream entry with `_id = "<id>:<seq>"`;
inserting it is the atomic compare-and-swap on MongoDB and FerretDB alike. An
entry that must reach Kafka carries `published: false` (the outbox) in that same
insert. `approvals` is a projection for listing; it may lag and is repaired by the
sweeper and the outbox relay.

The projection is split so that the hot paths cost the same whatever the history:
`approvals` holds the rows still pending (a few, whatever the history), and a row
moves to `approvals_archive` when its approval ends. On FerretDB 1.x every filter
other than `_id` reads the whole collection, so the reviewer queue, the pending
count and the sweeper read only the small one; listings of other statuses read
both and merge them (same order, same cursors). A terminal row may briefly be in
both (a crash between the two writes): readers keep the newest version of a row.
"""

import base64
import contextlib
import heapq
import json
import logging
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hitl_contracts import Channel
from hitl_shared.mongo import Document, ensure_index, ensure_query_index, insert_once
from pydantic import ValidationError
from pymongo import ASCENDING, DESCENDING, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError

from hitl_approval.adapters.storable import dumps, loads, readable
from hitl_approval.domain.model import Approval, BrokenApproval, Entry, EntryType, Status
from hitl_approval.service_layer.ports import OutboxItem

log = logging.getLogger(__name__)

EVENTS = "approval_events"
APPROVALS = "approvals"  # pending rows only (the active listing)
ARCHIVE = "approvals_archive"  # rows of approvals that ended
# A stream only grows by a few entries; this bounds a pathological chase.
MAX_PROJECTIONS = 8
# Streams whose stored entries this process keeps (a few KiB each): their decision
# most likely comes here next.
KNOWN_STREAMS = 2_048
# Outbox marks per `update` command (see `mark_published_many`).
MARK_BATCH = 16
FILTER_KEYS = ("status", "agent", "run_id", "tool", "risk_level", "escalated")


@dataclass(frozen=True)
class Filters:
    status: str | None = None
    agent: str | None = None
    run_id: str | None = None
    tool: str | None = None
    risk_level: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    escalated: bool | None = None


@dataclass(frozen=True)
class Page:
    items: list[Document]
    next_cursor: str | None


def _entry_id(correlation_id: str, seq: int) -> str:
    return f"{correlation_id}:{seq:08d}"


def _entry_doc(correlation_id: str, entry: Entry, owner: str = "") -> Document:
    doc: Document = {
        "_id": _entry_id(correlation_id, entry.seq),
        "correlation_id": correlation_id,
        "seq": entry.seq,
        "type": entry.type.value,
        "at": entry.at,
        "actor": entry.actor,
        "channel": entry.channel.value,
        "data": dumps(entry.data),
    }
    if entry.publish:
        doc["published"] = False
        doc["owner"] = owner
    if entry.idempotency:
        doc["idempotency"] = entry.idempotency
    return doc


def _entry(doc: Document) -> Entry:
    return Entry(
        seq=doc["seq"],
        type=EntryType(doc["type"]),
        at=doc["at"],
        actor=doc["actor"],
        channel=Channel(doc["channel"]),
        data=loads(doc["data"]),
        publish="published" in doc,
        idempotency=str(doc.get("idempotency") or ""),
    )


DUPLICATE_KEY = 11000


def _first_line(exc: Exception) -> str:
    """What is wrong with a stored stream, short enough for a log line and a 409."""
    if isinstance(exc, ValidationError):
        found = exc.errors()[:3]
        return "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in found)[:300]
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"[:300]


async def insert_new(collection: AsyncCollection[Document], docs: list[Document]) -> set[int]:
    """Insert all `docs` unordered; the indexes of those whose `_id` already existed."""
    if not docs:
        return set()
    try:
        await collection.insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        others = [e for e in errors if e.get("code") != DUPLICATE_KEY]
        if others or exc.details.get("writeConcernErrors") or not errors:
            raise
        return {int(e["index"]) for e in errors}
    return set()


async def _upsert_newer(rows: AsyncCollection[Document], doc: Document) -> None:
    """Write the row by `_id` alone (one round trip, served by the `_id` index).

    On FerretDB 1.x any further condition (such as "only if newer") makes the write
    scan the collection, so a slow writer may land an older view; `project` then sees
    the stream moved on and writes the newer one (see there).
    """
    with contextlib.suppress(DuplicateKeyError):  # two first upserts at once
        await rows.replace_one({"_id": doc["_id"]}, doc, upsert=True)


class _Reversed:
    """Orders the opposite way, to sort descending keys with one ascending sort."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __lt__(self, other: "_Reversed") -> bool:
        return bool(other.value < self.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Reversed) and bool(self.value == other.value)


def _sort_key(order: list[tuple[str, int]]) -> Any:
    def key(doc: Document) -> tuple[Any, ...]:
        return tuple(
            doc.get(name) if direction == ASCENDING else _Reversed(doc.get(name))
            for name, direction in order
        )

    return key


def encode_cursor(requested_at: datetime, correlation_id: str) -> str:
    raw = json.dumps([requested_at.isoformat(), correlation_id]).encode()
    return base64.urlsafe_b64encode(raw).decode()


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        at, cid = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return datetime.fromisoformat(at), str(cid)
    except (ValueError, TypeError) as exc:
        raise ValueError("cursor is not one this API returned") from exc


class ApprovalRepository:
    def __init__(self, db: AsyncDatabase[Document], *, instance: str = "") -> None:
        self.instance = instance
        self.db = db
        self.events = db[EVENTS]
        self.approvals = db[APPROVALS]
        self.archive = db[ARCHIVE]
        # A stored prefix of each stream this process wrote or read lately. Entries are
        # only ever appended and never change, so a known prefix stays true: `get`
        # starts after it (one probe by `_id` for a pending approval, not two).
        self.known: OrderedDict[str, tuple[Entry, ...]] = OrderedDict()

    def _remember(self, correlation_id: str, entries: list[Entry]) -> None:
        self.known[correlation_id] = tuple(entries)
        self.known.move_to_end(correlation_id)
        while len(self.known) > KNOWN_STREAMS:
            self.known.popitem(last=False)

    async def ensure_indexes(self) -> None:
        await ensure_index(
            self.events,
            [("correlation_id", ASCENDING), ("seq", ASCENDING)],
            unique=True,
            name="stream",
        )
        await ensure_query_index(
            self.events, [("published", ASCENDING), ("at", ASCENDING)], name="outbox"
        )
        newest = [("requested_at", DESCENDING), ("_id", DESCENDING)]
        for rows in (self.approvals, self.archive):
            await ensure_query_index(rows, newest, name="newest")
            # One index per filter, ending in the listing's sort order, so a filtered
            # page is an index range scan rather than a sort of every match (MongoDB).
            for key in FILTER_KEYS:
                await ensure_query_index(rows, [(key, ASCENDING), *newest], name=f"by_{key}")
        await ensure_query_index(
            self.approvals, [("status", ASCENDING), ("expires_at", ASCENDING)], name="due"
        )
        await ensure_query_index(self.approvals, [("expires_at", ASCENDING)], name="expires_at")

    async def add(self, approval: Approval) -> bool:
        """Store a new request; False when this correlation id already exists."""
        created = await insert_once(
            self.db, EVENTS, _entry_doc(approval.correlation_id, approval.entries[0])
        )
        if created:
            self._remember(approval.correlation_id, approval.entries[:1])
        # Also on redelivery: a crash may have come between the stream and the projection.
        await self.project(approval)
        return created

    async def add_many(self, approvals: list[Approval]) -> list[bool]:
        """`add` for many new requests in two round trips; True for each one stored now.

        Both inserts are unordered, so one duplicate does not stop the rest. A stream
        that already existed (a redelivery, or the same id twice in the batch) goes
        through `project` like `add` does, to repair a projection a crash left behind.
        """
        if not approvals:
            return []
        docs = [_entry_doc(a.correlation_id, a.entries[0]) for a in approvals]
        taken = await insert_new(self.events, docs)
        created = [i not in taken for i in range(len(approvals))]
        for approval, new in zip(approvals, created, strict=True):
            if new:
                self._remember(approval.correlation_id, approval.entries[:1])
        # Only rows of streams created just now: nothing newer can be lost by an insert.
        await insert_new(
            self.approvals,
            [self._projection(a) for a, new in zip(approvals, created, strict=True) if new],
        )
        for approval, new in zip(approvals, created, strict=True):
            if not new:
                await self.project(approval)
        return created

    async def get(self, correlation_id: str) -> Approval | None:
        """The approval, None if there is none; BrokenApproval if it cannot be read."""
        # Entry by entry on its `_id`, until the first gap: FerretDB 1.x answers only an
        # `_id` equality without reading the whole collection, and a stream holds a few
        # entries. Entries are only ever appended, so the result is a consistent prefix.
        entries = list(self.known.get(correlation_id, ()))
        try:
            while (
                doc := await self.events.find_one({"_id": _entry_id(correlation_id, len(entries))})
            ) is not None:
                entries.append(_entry(doc))
            if not entries:
                return None
            approval = Approval.from_entries(entries)
            # What every use case computes first: a deadline that overflows shows here.
            _ = approval.expires_at, approval.status
        except (ValueError, TypeError, KeyError, AssertionError, OverflowError) as exc:
            # Older rules let through what today's refuse (a 1e15-second escalation).
            raise BrokenApproval(correlation_id, _first_line(exc)) from exc
        self._remember(correlation_id, entries)
        return approval

    def recent(self, correlation_id: str) -> Approval | None:
        entries = self.known.get(correlation_id)
        if not entries:
            return None
        try:
            return Approval.from_entries(list(entries))
        except (ValueError, TypeError, KeyError, AssertionError, OverflowError):
            return None  # `get` reports it

    async def append(self, approval: Approval, entry: Entry) -> bool:
        """Append atomically; False when another writer took that seq first."""
        doc = _entry_doc(approval.correlation_id, entry, self.instance)
        if not await insert_once(self.db, EVENTS, doc):
            return False
        if approval.version + 1 == entry.seq:
            self._remember(approval.correlation_id, [*approval.entries, entry])
        return True

    async def project(self, approval: Approval) -> None:
        """Bring the listing row up to this approval's version, or to the stream's if newer.

        FerretDB's conditional update is a read then a write, so a slow writer can still
        land an older view over a newer one. Each writer therefore looks at the stream
        after writing and re-projects if it moved on: whoever writes last sees the newest
        entry, so the row ends at the newest version (and, once ended, in the archive).
        """
        for _ in range(MAX_PROJECTIONS):
            doc = self._projection(approval)
            if approval.status.terminal:
                # Archive first: a crash in between leaves the row in both, never in none.
                # An ended approval's row never changes again, so a plain insert (grouped
                # with concurrent ones) does; one already there is this same row.
                await insert_once(self.db, ARCHIVE, doc)
                await self.approvals.delete_one({"_id": approval.correlation_id})
            else:
                await _upsert_newer(self.approvals, doc)
            if approval.status.terminal:
                return  # nothing follows an end: this is the newest version
            following = _entry_id(approval.correlation_id, approval.version + 1)
            if await self.events.find_one({"_id": following}, {"_id": 1}) is None:
                return
            fresher = await self.get(approval.correlation_id)
            if fresher is None:
                return
            approval = fresher

    def _listings(self, status: str | None) -> list[AsyncCollection[Document]]:
        """Where rows of `status` may be: pending ones only in the small collection."""
        if status == Status.PENDING.value:
            return [self.approvals]
        return [self.approvals, self.archive]

    async def find_rows(
        self,
        query: dict[str, Any],
        *,
        status: str | None,
        order: list[tuple[str, int]],
        limit: int,
        fields: dict[str, int] | None = None,
    ) -> list[Document]:
        """The first `limit` rows matching `query` in `order`, from every listing they may be in.

        Each collection answers its own first `limit` in the same order; merging those
        gives the overall first `limit`, so keyset cursors work as on one collection.
        """
        if fields is not None:
            fields = {**fields, "version": 1, **{key: 1 for key, _ in order}}
        answers: list[list[Document]] = []
        for rows in self._listings(status):
            found = rows.find(query, fields).sort(order).limit(limit)
            answers.append([doc async for doc in found])
        if len(answers) == 1:
            return answers[0]
        newest: dict[Any, Document] = {}
        for doc in heapq.merge(*answers, key=_sort_key(order)):
            kept = newest.get(doc["_id"])
            if kept is None or doc.get("version", 0) > kept.get("version", 0):
                newest[doc["_id"]] = doc
        merged = sorted(newest.values(), key=_sort_key(order))
        return merged[:limit]

    async def row(self, correlation_id: str) -> Document | None:
        """The listing row of one approval, wherever it is (the newest if in both)."""
        rows = [
            doc
            for listing in (self.approvals, self.archive)
            if (doc := await listing.find_one({"_id": correlation_id})) is not None
        ]
        return max(rows, key=lambda doc: int(doc.get("version", 0)), default=None)

    async def agents(self) -> list[str]:
        # A $group, not `distinct`: FerretDB 1.x refuses `distinct` with the maxTimeMS the
        # client's operation timeout adds (APPROVAL_STORE_TIMEOUT_MS).
        found: set[str] = set()
        for rows in self._listings(None):
            grouped = await rows.aggregate([{"$group": {"_id": "$agent"}}])
            found.update([str(doc["_id"]) async for doc in grouped if doc["_id"]])
        return sorted(found)

    async def page(self, filters: Filters, *, limit: int, cursor: str | None) -> Page:
        query: dict[str, Any] = {}
        for key in FILTER_KEYS:
            if (value := getattr(filters, key)) is not None:
                query[key] = value
        created: dict[str, datetime] = {}
        if filters.created_after:
            created["$gte"] = filters.created_after
        if filters.created_before:
            created["$lt"] = filters.created_before
        if created:
            query["requested_at"] = created
        if cursor:
            at, cid = decode_cursor(cursor)
            query = {
                "$and": [
                    query,
                    {
                        "$or": [
                            {"requested_at": {"$lt": at}},
                            {"requested_at": at, "_id": {"$lt": cid}},
                        ]
                    },
                ]
            }
        items = await self.find_rows(
            query,
            status=filters.status,
            order=[("requested_at", DESCENDING), ("_id", DESCENDING)],
            limit=limit + 1,
        )
        more = len(items) > limit
        items = items[:limit]
        next_cursor = encode_cursor(items[-1]["requested_at"], items[-1]["_id"]) if more else None
        return Page(items=items, next_cursor=next_cursor)

    async def due(self, now: datetime, *, limit: int = 200) -> list[str]:
        query = {
            "status": Status.PENDING.value,
            "expires_at": {"$lte": now},
            "set_aside": {"$exists": False},
        }
        found = self.approvals.find(query, {"_id": 1}).limit(limit)
        return [doc["_id"] async for doc in found]

    async def set_aside(self, correlation_id: str, reason: str) -> None:
        """Keep an approval that cannot be read out of every later sweep (a page of them
        would otherwise crowd out the ones that can expire); `reason` is for operators."""
        await self.approvals.update_one({"_id": correlation_id}, {"$set": {"set_aside": reason}})

    async def unpublished(self, *, before: datetime, limit: int = 200) -> list[OutboxItem]:
        found = self.events.find({"published": False, "at": {"$lt": before}}).limit(limit)
        return [
            OutboxItem(doc["correlation_id"], _entry(doc), doc.get("owner", ""))
            async for doc in found
        ]

    async def is_unpublished(self, correlation_id: str, seq: int) -> bool:
        doc = await self.events.find_one({"_id": _entry_id(correlation_id, seq)}, {"published": 1})
        return doc is not None and doc.get("published") is False

    async def entry_at(self, correlation_id: str, seq: int) -> tuple[OutboxItem, bool] | None:
        doc = await self.events.find_one({"_id": _entry_id(correlation_id, seq)})
        if doc is None:
            return None
        item = OutboxItem(correlation_id, _entry(doc), doc.get("owner", ""))
        return item, doc.get("published") is not False

    async def mark_published(self, correlation_id: str, seq: int) -> None:
        await self.events.update_one(
            {"_id": _entry_id(correlation_id, seq)}, {"$set": {"published": True}}
        )

    async def mark_published_many(self, keys: list[tuple[str, int]]) -> None:
        """`mark_published` for many entries, `MARK_BATCH` to a round trip (each by `_id`).

        Bounded because FerretDB 1.24 as released keeps every statement's read (and its
        backend connection) open until the whole `update` command ends: one command of
        50 statements took all of its PostgreSQL pool (100 on SQLite) and hung the
        server for good. Our build fixes that (deploy/local/lib/ferretdb.sh,
        `ferretdb_patch_read_before_write`); this keeps a stock FerretDB well clear.
        """
        for start in range(0, len(keys), MARK_BATCH):
            await self.events.bulk_write(
                [
                    UpdateOne({"_id": _entry_id(cid, seq)}, {"$set": {"published": True}})
                    for cid, seq in keys[start : start + MARK_BATCH]
                ],
                ordered=False,
            )

    async def count_pending(self) -> int:
        return await self.approvals.count_documents({"status": Status.PENDING.value})

    @staticmethod
    def _projection(approval: Approval) -> Document:
        req = approval.request
        decided = approval.decision
        return {
            "_id": req.correlation_id,
            "run_id": req.run_id,
            "agent": req.agent,
            "tool": req.tool,
            "risk_level": req.risk_level.value,
            "requested_at": req.requested_at,
            "expires_at": approval.expires_at,
            "escalated": approval.escalated,
            "status": approval.status.value,
            "version": approval.version,
            "approvers": approval.approvers,
            "requested_by": req.requested_by,
            "decided_at": decided.decided_at if decided else None,
            "policy": approval.policy.model_dump(mode="json"),
            # Exact JSON for the API; storable copies for queries and other readers.
            "request_json": req.model_dump_json(),
            "decision_json": decided.model_dump_json() if decided else None,
            "request": readable(req.model_dump(mode="json")),
            "decision": readable(decided.model_dump(mode="json")) if decided else None,
        }
