"""Many updates at once finish: the store does not deadlock under the services' concurrency.

FerretDB 1.24 on PostgreSQL ran each update while the query that found the document
still held its pool connection, and took a second connection for the write; with 50
such commands at once (its pool's size) every connection waited for another and the
server hung for good, which stalled the benchmark at 50 decisions/s. Our FerretDB
build (deploy/local/lib/ferretdb.sh, `ferretdb_patch_read_before_write`) closes the
read first. This drives well over 50 concurrent `update_one`, `find_one_and_update`
and `find_one_and_delete` (the commands that hold a read while writing) and checks
that every one finished and applied exactly once. Against FerretDB on PostgreSQL
(`HITL_STORE_BACKEND=postgresql`) it is the regression test of that patch; on SQLite
or MongoDB it checks the same outcome. Without the patch it fails on its deadline and
the server stays hung (restart it).
"""

import asyncio
import contextlib
import uuid
from typing import Any

import pymongo
from pymongo import AsyncMongoClient, ReturnDocument
from pymongo.errors import PyMongoError

from tests.support.infra import Infra

# Above FerretDB's PostgreSQL pool (50 connections), so that unpatched every
# connection can be held by a read waiting for a second one.
CONCURRENCY = 120
ROUNDS = 3
# A deadline, not a sleep: about 1,000 single-document writes; slow machines included.
DEADLINE_S = 180.0


async def test_concurrent_updates_and_find_and_modify_all_finish(infra: Infra) -> None:
    # One client connection per task, so FerretDB really sees CONCURRENCY commands at once.
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        infra.mongodb_url, tz_aware=True, maxPoolSize=CONCURRENCY + 10
    )
    # Not the `db` fixture: its unbounded drop would hang on a hung server after the
    # failure this test reports.
    name = f"hitl_it_{uuid.uuid4().hex[:8]}"
    try:
        coll = client[name]["counters"]
        scratch = client[name]["scratch"]
        await coll.insert_many([{"_id": f"c{i}", "n": 0, "m": 0} for i in range(CONCURRENCY)])
        start = asyncio.Event()

        async def worker(i: int) -> list[int]:
            await start.wait()
            removed = []
            for r in range(ROUNDS):
                await coll.update_one({"_id": f"c{i}"}, {"$inc": {"n": 1}})
                after = await coll.find_one_and_update(
                    {"_id": f"c{i}"}, {"$inc": {"m": 1}}, return_document=ReturnDocument.AFTER
                )
                assert after is not None
                assert after["m"] == r + 1
                await scratch.insert_one({"_id": f"s{i}-{r}", "round": r})
                gone = await scratch.find_one_and_delete({"_id": f"s{i}-{r}"})
                assert gone is not None
                removed.append(int(gone["round"]))
            return removed

        tasks = [asyncio.create_task(worker(i)) for i in range(CONCURRENCY)]
        start.set()
        _, pending = await asyncio.wait(tasks, timeout=DEADLINE_S)
        for task in pending:
            task.cancel()
        assert not pending, (
            f"{len(pending)} of {CONCURRENCY} workers still waiting after {DEADLINE_S}s: "
            "the store is hung (FerretDB on PostgreSQL without the read-before-write patch?)"
        )
        assert [t.result() for t in tasks] == [list(range(ROUNDS))] * CONCURRENCY

        # Each increment applied exactly once, each scratch document deleted.
        with pymongo.timeout(30):
            counters = await coll.find({}).to_list()
            assert len(counters) == CONCURRENCY
            assert all(c["n"] == ROUNDS and c["m"] == ROUNDS for c in counters)
            assert await scratch.count_documents({}) == 0
    finally:
        # Bounded and quiet: after a hang the failure above is the news, not the drop.
        with contextlib.suppress(PyMongoError), pymongo.timeout(30):
            await client.drop_database(name)
        await client.close()
