"""Past work in the store: N finished runs with their approvals, as hitl itself wrote them.

One real run is driven to completion through the REST APIs (submitted, paused,
approved, transfer executed, completed). Every document any service wrote for it,
in every collection, is then copied N times with its ids (UUIDs, tool call ids)
replaced by fresh ones, so the copies are indistinguishable from N more finished runs
to every query and index. Nothing about the documents' shape is assumed here, so the
history follows the services as they change.

Fast enough for 100,000 runs (about 1.3 M documents):

- a document whose `_id` names no run (an account's balance link, say) is the same in
  every copy, so it is not copied at all. Inserting it again would fail on the unique
  `_id`, and FerretDB 1.x answers a failed batch (100 documents, one transaction) by
  inserting its documents one transaction each: every batch paid 100 durable commits
  instead of one, which made 100k runs take over an hour;
- each document is encoded to BSON once and cut at its ids; a copy is the pieces
  joined with fresh ids of the same length (valid BSON of the same size), inserted as
  raw BSON: no JSON, no regex and no encoding per copy;
"""

import asyncio
import re
import time
import uuid
from typing import Any

import bson
from bson import ObjectId
from bson.raw_bson import RawBSONDocument
from pymongo import AsyncMongoClient
from pymongo.errors import BulkWriteError

from bench.load import decide
from bench.scenarios.common import reviewer
from bench.scenarios.paused import prepare
from bench.tap import RunTap
from tests.support.infra import Infra
from tests.support.stack import Stack

BATCH = 1000  # copies per insert_many (pymongo splits it into messages of <= 48 MB)
# insert_many calls at once: one. SQLite has one writer, and FerretDB's other connections
# wait for it by sleeping and retrying (busy_timeout): 4 at once seeded slower.
IN_FLIGHT = 1
DUPLICATE_KEY = 11000
IDS = re.compile(
    rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"  # uuid4 (runs, approvals)
    rb"|(?<=call_)[0-9a-f]{16}"  # tool call ids
    rb"|(?<=guard_)[0-9a-f]{12}"
)
OBJECT_ID = b""  # the key, among a template's pieces, of its ObjectId `_id`
# A template: BSON bytes as [literal, key, literal, ..., key, literal], where each key is
# an id the copy replaces.
Template = list[bytes]


def _fresh(old: bytes) -> bytes:
    if b"-" in old:
        return str(uuid.uuid4()).encode()
    return uuid.uuid4().hex[: len(old)].encode()


def _cut(raw: bytes, object_id: ObjectId | None) -> Template:
    spots = [(m.start(), m.end(), m[0]) for m in IDS.finditer(raw)]
    if object_id is not None:
        # BSON element: type 7, the name "_id\0", then the 12 bytes of the ObjectId.
        at = raw.index(b"\x07_id\x00" + object_id.binary) + 5
        spots.append((at, at + 12, OBJECT_ID))
    pieces: Template = []
    pos = 0
    for start, end, key in sorted(spots):
        pieces += [raw[pos:start], key]
        pos = end
    return [*pieces, raw[pos:]]


def _copy(template: Template, mapping: dict[bytes, bytes]) -> RawBSONDocument:
    pieces = [
        piece if i % 2 == 0 else (mapping[piece] if piece else ObjectId().binary)
        for i, piece in enumerate(template)
    ]
    return RawBSONDocument(b"".join(pieces))


async def _insert_new(collection: Any, docs: list[RawBSONDocument]) -> int:
    """Insert the copies; a duplicate `_id` (none is expected) is skipped, not fatal."""
    try:
        await collection.insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(e.get("code") != DUPLICATE_KEY for e in errors):
            raise
        return int(exc.details.get("nInserted", 0))
    return len(docs)


async def _templates(db: Any, ids: set[str]) -> dict[str, list[Template]]:
    """Per collection, the finished run's documents that mention the run and whose `_id`
    does too (or is an ObjectId, which each copy gets afresh): the others are state of
    the present, the same in every copy."""
    found: dict[str, list[Template]] = {}
    for name in await db.list_collection_names():
        async for doc in db[name].find({}):
            key = doc.get("_id")
            object_id = key if isinstance(key, ObjectId) else None
            if object_id is None and not IDS.search(str(key).encode()):
                continue
            raw = bson.encode(doc)
            if any(i.encode() in raw for i in ids):
                found.setdefault(name, []).append(_cut(raw, object_id))
    return found


async def seed(infra: Infra, stack: Stack, tap: RunTap, count: int) -> dict[str, Any]:
    """Add `count` finished runs (approved transfer) to the stack's store."""
    if count <= 0:
        return {"runs": 0}
    runs = await prepare(stack, tap, 1)
    ((cid, run_id),) = runs.items()
    async with reviewer(stack) as client:
        answer = await decide(client, cid)
        if answer.status != 200:
            raise RuntimeError(f"seeding: the template decision answered {answer.status}")
    await tap.wait_for(run_id, "completed", timeout=60)
    time_0 = time.perf_counter()
    client_: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongodb_url)
    try:
        db = client_[stack.database]
        # Let the outboxes mark their rows published before copying them.
        await asyncio.sleep(1.0)
        templates = await _templates(db, {run_id, cid})
        if not templates:
            raise RuntimeError("seeding: no documents mention the template run")
        distinct = {t[i] for ts in templates.values() for t in ts for i in range(1, len(t), 2)}
        distinct.discard(OBJECT_ID)
        # One set of fresh ids per copy, shared by all its documents, as a real run's are.
        mappings = [{old: _fresh(old) for old in distinct} for _ in range(count)]
        gate = asyncio.Semaphore(IN_FLIGHT)

        async def chunk(name: str, start: int) -> int:
            async with gate:
                docs = [
                    _copy(template, mapping)
                    for mapping in mappings[start : start + BATCH]
                    for template in templates[name]
                ]
                return await _insert_new(db[name], docs)

        jobs = [chunk(name, start) for name in templates for start in range(0, count, BATCH)]
        written = sum(await asyncio.gather(*jobs))
    finally:
        await client_.close()
    elapsed = time.perf_counter() - time_0
    return {
        "runs": count,
        "documents_written": written,
        "collections": {name: len(ts) * count for name, ts in templates.items()},
        "seconds": round(elapsed, 1),
        "documents_per_s": round(written / elapsed) if elapsed else None,
    }
