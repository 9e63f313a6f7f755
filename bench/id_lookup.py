"""Cost of a lookup and an update by _id at a given collection size.

`uv run python -m bench.id_lookup [--docs 50000] [--url mongodb://127.0.0.1:27018/]`
Shows whether the store serves `{_id: x}` from its index (flat) or by a scan (grows
with the collection): see README, "What bounds it".
"""

import argparse
import asyncio
import os
import time
import uuid

from pymongo import AsyncMongoClient


async def measure(url: str, docs: int, samples: int = 50) -> tuple[float, float]:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(url)
    db = client[f"bench_id_{uuid.uuid4().hex[:8]}"]
    try:
        items = db.items
        for start in range(0, docs, 1000):
            batch = range(start, min(start + 1000, docs))
            await items.insert_many([{"_id": f"id-{i}", "v": i, "pad": "x" * 200} for i in batch])
        keys = [f"id-{(i * 997) % docs}" for i in range(samples)]
        t0 = time.perf_counter()
        for key in keys:
            await items.find_one({"_id": key})
        find_ms = (time.perf_counter() - t0) / samples * 1000
        t0 = time.perf_counter()
        for key in keys:
            await items.update_one({"_id": key}, {"$set": {"v": -1}})
        update_ms = (time.perf_counter() - t0) / samples * 1000
        return find_ms, update_ms
    finally:
        await client.drop_database(db.name)
        await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=50_000)
    parser.add_argument(
        "--url", default=os.environ.get("MONGODB_URL", "mongodb://127.0.0.1:27018/")
    )
    args = parser.parse_args()
    find_ms, update_ms = asyncio.run(measure(args.url, args.docs))
    print(
        f"{args.docs} documents: find_one by _id {find_ms:.1f} ms, update_one by _id {update_ms:.1f} ms"
    )


if __name__ == "__main__":
    main()
