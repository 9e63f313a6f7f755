"""Where the OpenAI Agents SDK bridge keeps runs: MongoDB, insert-only where it counts.

FerretDB runs updates as a read and a separate write, so every "only once" here is a
unique `_id` insert: one snapshot per step, one claim per step attempt, one start and
one result marker per approved call. Lookups are by `_id` alone (the index FerretDB
uses); the one filtered query is `serve`'s scan for open runs.
"""

import asyncio
import contextlib
import os
import socket
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

Doc = dict[str, Any]


class RunStore:
    """Runs, their step snapshots, step claims (leases) and tool-call markers."""

    def __init__(self, db: AsyncDatabase[Doc], *, prefix: str, lease_seconds: float) -> None:
        self.lease_seconds = lease_seconds
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.runs = db[prefix + "runs"]
        self.snapshots = db[prefix + "snapshots"]
        self.claims = db[prefix + "claims"]
        self.effects = db[prefix + "effects"]
        self._head_hint: dict[str, int] = {}

    async def ensure_indexes(self) -> None:
        await self.runs.create_index("closed")

    # -- runs ------------------------------------------------------------------------

    async def add_run(self, run_id: str, input: Any, context: Doc | None) -> Doc | None:
        """Record a new run; the stored one if `run_id` exists already."""
        try:
            await self.runs.insert_one(
                {"_id": run_id, "input": input, "context": context, "closed": False}
            )
        except DuplicateKeyError:
            return await self.runs.find_one({"_id": run_id})
        return None

    async def run(self, run_id: str) -> Doc | None:
        return await self.runs.find_one({"_id": run_id})

    async def close(self, run_id: str) -> None:
        await self.runs.update_one({"_id": run_id}, {"$set": {"closed": True}})

    async def open_runs(self) -> AsyncIterator[str]:
        async for doc in self.runs.find({"closed": False}, {"_id": 1}):
            yield str(doc["_id"])

    # -- snapshots -------------------------------------------------------------------

    async def head(self, run_id: str) -> Doc | None:
        """The run's latest snapshot: snapshots are never removed, so probe forward by id."""
        seq, head = self._head_hint.get(run_id, 0), None
        while (doc := await self.snapshots.find_one({"_id": f"{run_id}/{seq}"})) is not None:
            head, seq = doc, seq + 1
        if head is not None:
            self._head_hint[run_id] = head["seq"]
        return head

    async def store(self, run_id: str, step: int, fields: Doc) -> Doc:
        """Store step `step`; the snapshot that stands (another process's, if it was first)."""
        doc = {"_id": f"{run_id}/{step}", "run_id": run_id, "seq": step, **fields}
        try:
            await self.snapshots.insert_one(doc)
        except DuplicateKeyError:
            stored = await self.snapshots.find_one({"_id": doc["_id"]})
            assert stored is not None
            doc = stored
        self._head_hint[run_id] = step
        return doc

    # -- step claims -----------------------------------------------------------------

    async def claim(self, run_id: str, step: int) -> str | None:
        """The right to take `step`, or None while another process holds it."""
        attempt = 0
        while True:
            key = f"{run_id}/{step}/{attempt}"
            held = await self.claims.find_one({"_id": key})
            if held is None:
                try:
                    until = time.time() + self.lease_seconds
                    await self.claims.insert_one({"_id": key, "owner": self.owner, "until": until})
                except DuplicateKeyError:
                    return None
                return key
            if held["until"] > time.time():
                return None
            attempt += 1

    async def renew(self, claim: str) -> None:
        """Keep the lease while the step runs (a slow model is no reason to take over);
        only this process writes this claim, so a plain update is safe on FerretDB too."""
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            until = time.time() + self.lease_seconds
            await self.claims.update_one({"_id": claim}, {"$set": {"until": until}})

    async def release(self, claim: str) -> None:
        await self.claims.delete_one({"_id": claim})

    # -- tool-call markers -----------------------------------------------------------

    async def result_of(self, key: str) -> tuple[bool, Any]:
        """(True, the stored result) once the call `key` finished; (False, None) before."""
        done = await self.effects.find_one({"_id": key + "/done"})
        return (True, done["result"]) if done is not None else (False, None)

    async def mark_started(self, key: str) -> bool:
        """Mark call `key` as started; False when it was before (and never finished)."""
        try:
            await self.effects.insert_one({"_id": key, "owner": self.owner, "at": time.time()})
        except DuplicateKeyError:
            return False
        return True

    async def mark_done(self, key: str, result: Any) -> None:
        # A concurrent copy (its lease taken over) may have finished first: its stands.
        with contextlib.suppress(DuplicateKeyError):
            await self.effects.insert_one({"_id": key + "/done", "result": result})
