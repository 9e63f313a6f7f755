"""Updates finish under the services' load: the store's connection pool never deadlocks.

FerretDB 1.24 on PostgreSQL ran each update statement while the query that found the
document still held its pool connection (until the end of the whole command), and
took a second connection for the write. Its pool has 50 connections, so 50 update
statements in flight (concurrent commands, or one bulk `update` of 50 statements such
as the approval outbox's `mark_published_many`) held every connection while each
waited for one more, and the server hung for good: that stalled the benchmark at
50 decisions/s. Our FerretDB build (deploy/local/lib/ferretdb.sh,
`ferretdb_patch_read_before_write`) closes the read before writing. These tests drive
both shapes well past 50 and check that everything finished and applied exactly once.
Against FerretDB on PostgreSQL (`HITL_STORE_BACKEND=postgresql`) they are the
regression tests of that patch; on SQLite or MongoDB they check the same outcome.
Without the patch they fail on their deadline and the server stays hung (restart it).
"""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pymongo
from hitl_approval.adapters.repository import EVENTS, MARK_BATCH, ApprovalRepository
from pymongo import AsyncMongoClient, ReturnDocument, UpdateOne, monitoring
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError

from tests.support.infra import Infra

# Above FerretDB's PostgreSQL pool (50 connections), so that unpatched every
# connection can be held by a read waiting for a second one.
CONCURRENCY = 120
ROUNDS = 3
# Statements in one bulk update: one such command alone exhausted the pool.
BULK = 120
# A deadline, not a sleep: about 1,000 single-document writes; slow machines included.
DEADLINE_S = 180.0


@contextlib.asynccontextmanager
async def fresh(infra: Infra) -> AsyncIterator[AsyncDatabase[dict[str, Any]]]:
    """A database of its own on a client with a connection per task.

    Not the `db` fixture: its unbounded drop would hang on a hung server after the
    failure these tests report.
    """
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        infra.mongodb_url, tz_aware=True, maxPoolSize=CONCURRENCY + 10
    )
    name = f"hitl_it_{uuid.uuid4().hex[:8]}"
    try:
        yield client[name]
    finally:
        # Bounded and quiet: after a hang the failure is the news, not the drop.
        with contextlib.suppress(PyMongoError), pymongo.timeout(30):
            await client.drop_database(name)
        await client.close()


async def test_concurrent_updates_and_find_and_modify_all_finish(infra: Infra) -> None:
    async with fresh(infra) as db:
        coll = db["counters"]
        scratch = db["scratch"]
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

        # One client connection per task, so FerretDB sees CONCURRENCY commands at once.
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


async def test_bulk_updates_of_many_statements_finish(infra: Infra) -> None:
    """The outbox's shape: `bulk_write` of UpdateOne by `_id` (one `update` command)."""
    async with fresh(infra) as db:
        events = db["events"]
        writers = 3
        await events.insert_many(
            [{"_id": f"e{w}-{i}", "published": False} for w in range(writers) for i in range(BULK)]
        )

        async def mark(w: int) -> int:
            result = await events.bulk_write(
                [
                    UpdateOne({"_id": f"e{w}-{i}"}, {"$set": {"published": True}})
                    for i in range(BULK)
                ],
                ordered=False,
            )
            return result.modified_count

        try:
            with pymongo.timeout(DEADLINE_S):
                modified = await asyncio.gather(*(mark(w) for w in range(writers)))
        except PyMongoError as exc:
            raise AssertionError(
                f"{writers} bulk updates of {BULK} statements not done in {DEADLINE_S}s ({exc!r}):"
                " the store is hung (FerretDB on PostgreSQL without the read-before-write patch?)"
            ) from exc
        assert modified == [BULK] * writers
        with pymongo.timeout(30):
            assert await events.count_documents({"published": True}) == writers * BULK


@dataclass
class Updates(monitoring.CommandListener):
    statements: list[int] = field(default_factory=list)

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "update":
            self.statements.append(len(event.command["updates"]))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        return None

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        return None


async def test_outbox_marks_go_in_bounded_commands(infra: Infra) -> None:
    """A stock FerretDB keeps each statement's connection to the end of the command, so
    the approval outbox's marks go `MARK_BATCH` to an `update`, however many there are."""
    listener = Updates()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        infra.mongodb_url, tz_aware=True, event_listeners=[listener]
    )
    name = f"hitl_it_{uuid.uuid4().hex[:8]}"
    try:
        db = client[name]
        keys = [(f"c-{i}", seq) for i in range(20) for seq in (1, 2)]
        await db[EVENTS].insert_many(
            [{"_id": f"{cid}:{seq:08d}", "published": False} for cid, seq in keys]
        )
        with pymongo.timeout(DEADLINE_S):
            await ApprovalRepository(db).mark_published_many(keys)
        assert await db[EVENTS].count_documents({"published": True}) == len(keys)
        assert listener.statements == [MARK_BATCH, MARK_BATCH, len(keys) - 2 * MARK_BATCH]
    finally:
        with contextlib.suppress(PyMongoError), pymongo.timeout(30):
            await client.drop_database(name)
        await client.close()
