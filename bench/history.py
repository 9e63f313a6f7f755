"""Past work in the store: N finished runs with their approvals, as hitl itself wrote them.

One real run is driven to completion through the REST APIs (submitted, paused,
approved, transfer executed, completed). Every document any service wrote for it,
in every collection, is then copied N times with its ids (UUIDs, tool call ids)
replaced by fresh ones, so the copies are indistinguishable from N more finished runs
to every query and index. Nothing about the documents' shape is assumed here, so the
history follows the services as they change.
"""

import asyncio
import json
import re
import time
import uuid
from collections.abc import Callable
from typing import Any

from bson import ObjectId, json_util
from pymongo import AsyncMongoClient
from pymongo.errors import BulkWriteError

from bench.load import decide
from bench.scenarios.common import reviewer
from bench.scenarios.paused import prepare
from bench.tap import RunTap
from tests.support.infra import Infra
from tests.support.stack import Stack

BATCH = 1000
DUPLICATE_KEY = 11000
IDS = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"  # uuid4 (runs, approvals)
    r"|(?<=call_)[0-9a-f]{16}"  # tool call ids
    r"|(?<=guard_)[0-9a-f]{12}"
)


def _fresh(old: str) -> str:
    if "-" in old:
        return str(uuid.uuid4())
    return uuid.uuid4().hex[: len(old)]


def _renamer(mapping: dict[str, str]) -> Callable[[re.Match[str]], str]:
    return lambda m: mapping.get(m[0], m[0])


async def _insert_new(collection: Any, docs: list[dict[str, Any]]) -> int:
    """Insert the copies; skip those whose `_id` names no run (e.g. an account's balance
    link), which every copy would repeat: state of the present, not history."""
    try:
        await collection.insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(e.get("code") != DUPLICATE_KEY for e in errors):
            raise
        return int(exc.details.get("nInserted", 0))
    return len(docs)


async def _templates(db: Any, ids: set[str]) -> dict[str, list[str]]:
    """Per collection, the finished run's documents as extended JSON text."""
    found: dict[str, list[str]] = {}
    for name in await db.list_collection_names():
        async for doc in db[name].find({}):
            if isinstance(doc.get("_id"), ObjectId):
                del doc["_id"]  # the copy gets its own
            text = json_util.dumps(doc)
            if any(i in text for i in ids):
                found.setdefault(name, []).append(text)
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
        distinct = sorted(set(IDS.findall(json.dumps(templates))))
        # One set of fresh ids per copy, shared by all its documents, as a real run's are.
        mappings = [{old: _fresh(old) for old in distinct} for _ in range(count)]
        written = 0
        for name, texts in templates.items():
            joined = json.dumps(texts)
            for start in range(0, count, BATCH):
                docs = []
                for mapping in mappings[start : start + BATCH]:
                    copy = IDS.sub(_renamer(mapping), joined)
                    docs += [json_util.loads(t) for t in json.loads(copy)]
                written += await _insert_new(db[name], docs)
    finally:
        await client_.close()
    elapsed = time.perf_counter() - time_0
    return {
        "runs": count,
        "documents_written": written,
        "collections": {name: len(texts) * count for name, texts in templates.items()},
        "seconds": round(elapsed, 1),
    }
