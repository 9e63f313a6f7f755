"""What one store operation costs as a collection grows (no services involved).

hitl's hot paths look documents up by `_id` (runs, claims, outbox marks) and by
other indexed fields (an approval's stream by correlation_id, listings by run_id).
On MongoDB those are index lookups; this probe shows what they cost on the store
the benchmark runs against, at the collection sizes the other scenarios reach.
"""

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection

from tests.support.infra import Infra

REPEAT = 20
# Durable single-document inserts per writer in the concurrent-writers probe.
WRITER_INSERTS = 40
WRITERS = (1, 16)


async def _ms(job: Callable[[int], Awaitable[object]]) -> float:
    start = time.perf_counter()
    for i in range(REPEAT):
        await job(i)
    return round((time.perf_counter() - start) / REPEAT * 1000, 2)


async def _costs(col: AsyncCollection[dict[str, Any]], size: int) -> dict[str, float]:
    # The newest documents: the last rows a table scan reaches.
    newest = [f"{size - 1 - i:08d}" for i in range(REPEAT)]

    async def insert(i: int) -> object:
        return await col.insert_one({"_id": f"new-{size}-{i}", "key": f"new-{size}-{i}"})

    async def by_id(i: int) -> object:
        return await col.find_one({"_id": f"doc-{newest[i]}"})

    async def by_field(i: int) -> object:
        return await col.find({"key": f"key-{newest[i]}"}).sort("seq", ASCENDING).to_list()

    async def update(i: int) -> object:
        return await col.update_one({"_id": f"doc-{newest[i]}"}, {"$set": {"seq": 1}})

    return {
        "insert_one_ms": await _ms(insert),
        "find_one_by_id_ms": await _ms(by_id),
        "find_by_indexed_field_ms": await _ms(by_field),
        "update_one_by_id_ms": await _ms(update),
    }


async def _writers(col: AsyncCollection[dict[str, Any]], writers: int) -> dict[str, float]:
    """`writers` concurrent clients each inserting one document at a time, as services do.

    On FerretDB over SQLite every insert is a commit of the database's one writer;
    how the waiting writers queue shows in the tail (p99), not in the mean.
    """
    waits: list[float] = []

    async def writer(n: int) -> None:
        for i in range(WRITER_INSERTS):
            start = time.perf_counter()
            await col.insert_one({"_id": f"w{writers}-{n}-{i}", "pad": "x" * 400})
            waits.append(time.perf_counter() - start)

    start = time.perf_counter()
    await asyncio.gather(*(writer(n) for n in range(writers)))
    elapsed = time.perf_counter() - start
    waits.sort()
    return {
        "writers": writers,
        "inserts_per_s": round(len(waits) / elapsed),
        "p50_ms": round(waits[len(waits) // 2] * 1000, 1),
        "p99_ms": round(waits[min(len(waits) - 1, int(len(waits) * 0.99))] * 1000, 1),
    }


async def run(infra: Infra, *, sizes: list[int]) -> dict[str, Any]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongodb_url)
    name = f"hitl_bench_store_{uuid.uuid4().hex[:8]}"
    db = client[name]
    rows: list[dict[str, Any]] = []
    try:
        col = db["probe"]
        await col.create_index([("key", ASCENDING), ("seq", ASCENDING)], unique=True)
        have = 0
        for size in sizes:
            docs = [
                {"_id": f"doc-{i:08d}", "key": f"key-{i:08d}", "seq": 0, "pad": "x" * 400}
                for i in range(have, size)
            ]
            if docs:
                await col.insert_many(docs)
            have = size
            rows.append({"documents": size, **await _costs(col, size)})
        concurrent = [await _writers(db["writers"], n) for n in WRITERS]
    finally:
        await client.drop_database(name)
        await client.close()
    return {"repeat": REPEAT, "by_size": rows, "concurrent_writers": concurrent}
