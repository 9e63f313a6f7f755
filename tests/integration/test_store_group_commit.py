"""Concurrent single-document writes, as the services send them, each keep their own outcome.

Our FerretDB build commits write transactions that wait for SQLite's one writer
together (deploy/local/lib/ferretdb_group_commit.go: a savepoint per caller, one
COMMIT). What every caller is told must be exactly what a lone transaction would
have told it: a duplicate `_id` fails only its own insert, a caller that gives up
(its deadline passes) takes nobody else's writes with it, and every write
acknowledged is stored. The same holds on MongoDB, where this test also runs.
"""

import asyncio
from typing import Any

import pymongo
from pymongo import AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import DuplicateKeyError, PyMongoError

from tests.integration.conftest import Database
from tests.support.infra import Infra

WRITERS = 48


async def test_a_duplicate_fails_only_its_own_insert(infra: Infra, db: Database) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongodb_url)
    try:
        col = client[db.name]["cas"]
        await col.insert_many([{"_id": f"taken{i}"} for i in range(0, WRITERS, 4)])

        async def insert(i: int) -> bool:
            # Every fourth `_id` exists: those lose, in the middle of whatever group.
            id_ = f"taken{i}" if i % 4 == 0 else f"new{i}"
            try:
                await col.insert_one({"_id": id_, "by": i})
            except DuplicateKeyError:
                return False
            return True

        for _ in range(3):
            await col.delete_many({"_id": {"$regex": "^new"}})
            outcomes = await asyncio.gather(*(insert(i) for i in range(WRITERS)))
            assert outcomes == [i % 4 != 0 for i in range(WRITERS)]
            stored = {doc["_id"] async for doc in col.find({}, {"_id": 1})}
            assert stored == {f"taken{i}" for i in range(0, WRITERS, 4)} | {
                f"new{i}" for i in range(WRITERS) if i % 4
            }
            # The existing documents were not overwritten by the losers.
            assert await col.count_documents({"by": {"$exists": True}}) == WRITERS * 3 // 4
    finally:
        await client.close()


async def test_callers_that_give_up_take_no_one_elses_writes(infra: Infra, db: Database) -> None:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongodb_url)
    told = {True: 0, False: 0}
    try:
        await asyncio.gather(*(client.admin.command("ping") for _ in range(2 * WRITERS)))
        # Deadlines that run out for some inserts while they wait or run on the server
        # (sent with maxTimeMS) and not for others: both outcomes must occur.
        for round_, deadline_ms in enumerate((10, 20, 30, 45, 70, 100)):
            col = client[db.name][f"w{round_}"]

            async def write(
                id_: str, deadline: float | None, col: AsyncCollection[dict[str, Any]] = col
            ) -> bool:
                try:
                    with pymongo.timeout(deadline):
                        await col.insert_one({"_id": id_, "pad": "x" * 2000})
                except PyMongoError:
                    return False
                return True

            patient_ids = [f"p{i}" for i in range(WRITERS)]
            hasty_ids = [f"h{i}" for i in range(WRITERS)]
            outcomes = await asyncio.gather(
                *(write(id_, None) for id_ in patient_ids),
                *(write(id_, deadline_ms / 1000) for id_ in hasty_ids),
            )
            assert all(outcomes[:WRITERS])
            stored = {doc["_id"] async for doc in col.find({}, {"_id": 1})}
            assert set(patient_ids) <= stored
            # What a hasty caller was told it stored is stored; the rest may or may not be.
            hasty_ok = dict(zip(hasty_ids, outcomes[WRITERS:], strict=True))
            assert {id_ for id_, ok in hasty_ok.items() if ok} <= stored
            assert stored <= set(patient_ids) | set(hasty_ids)
            for ok in hasty_ok.values():
                told[ok] += 1
            # The store still takes writes afterwards (no transaction left open).
            await col.insert_one({"_id": "after"})
            assert await col.find_one({"_id": "after"}) == {"_id": "after"}
    finally:
        await client.close()
    assert told[True], told
    assert told[False], told
