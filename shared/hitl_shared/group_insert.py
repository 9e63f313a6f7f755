"""Group commit for unique-key inserts: concurrent inserts into one collection share a round trip.

Every atomic step of hitl is a single-document insert guarded by its `_id`
(`hitl_shared.mongo.insert_once`). On FerretDB over SQLite each insert is a commit of
the store's one writer, and that writer is what bounds the decisions per second: an
`insert_many` of 50 documents costs about what 2 single inserts do (one transaction).

So inserts into a collection issued while an earlier one is in flight wait for it and
then go together, as one unordered `insert_many`; each caller still learns whether
*its* document was stored (False: its `_id` existed). With nothing else in flight an
insert is sent at once, alone: no added latency when the machine is quiet. Unordered
means one duplicate does not stop the others; each document is still atomic on its
own, so the compare-and-swap of every caller is exactly what it was.
"""

import asyncio
from dataclasses import dataclass, field
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, DuplicateKeyError, WriteError

Document = dict[str, Any]

DUPLICATE_KEY = 11000
# A batch stays far below the server's 48 MB message limit with documents of a few KiB.
MAX_BATCH = 128


class _Lead:
    """The waiter woken with this sends the next batch itself."""


_LEAD = _Lead()


@dataclass(eq=False)
class _Waiting:
    doc: Document
    outcome: "asyncio.Future[bool | _Lead]"


@dataclass
class _Collection:
    # Held, so neither can be collected and its id reused by another while listed.
    loop: asyncio.AbstractEventLoop
    collection: AsyncCollection[Document]
    queue: list[_Waiting] = field(default_factory=list)
    sending: bool = False


# Per event loop, client and namespace: the inserts that may share a batch.
_GROUPS: dict[tuple[int, int, str, str], _Collection] = {}


def _group(collection: AsyncCollection[Document]) -> _Collection:
    loop = asyncio.get_running_loop()
    db = collection.database
    key = (id(loop), id(db.client), db.name, collection.name)
    group = _GROUPS.get(key)
    if group is None or group.loop is not loop or group.collection.database.client is not db.client:
        group = _GROUPS[key] = _Collection(loop, collection)
    return group


async def insert(collection: AsyncCollection[Document], doc: Document) -> bool:
    """Insert `doc`; False when its `_id` already exists. Batched with concurrent inserts."""
    group = _group(collection)
    mine = _Waiting(doc, asyncio.get_running_loop().create_future())
    group.queue.append(mine)
    if group.sending:
        try:
            outcome = await mine.outcome
        except asyncio.CancelledError:
            if _woken_to_lead(mine):
                # Cancelled between being woken and sending: the next one sends.
                group.sending = False
                _hand_over(group)
            raise
        if not isinstance(outcome, _Lead):
            return outcome
    # This caller sends: its own document and whatever queued behind the last batch.
    group.sending = True
    batch = [w for w in group.queue if not w.outcome.done() or w is mine][:MAX_BATCH]
    taken = {id(w) for w in batch}
    group.queue = [w for w in group.queue if id(w) not in taken and not w.outcome.done()]
    try:
        results = await _insert_many(collection, [w.doc for w in batch])
    except BaseException as exc:
        failure = exc if isinstance(exc, Exception) else RuntimeError(f"batch interrupted: {exc!r}")
        for waiting in batch:
            if waiting is not mine and not waiting.outcome.done():
                waiting.outcome.set_exception(failure)
        raise
    finally:
        group.sending = False
        _hand_over(group)
    for waiting, result in zip(batch, results, strict=True):
        if waiting is not mine and not waiting.outcome.done():
            if isinstance(result, Exception):
                waiting.outcome.set_exception(result)
            else:
                waiting.outcome.set_result(result)
    own = next(r for w, r in zip(batch, results, strict=True) if w is mine)
    if isinstance(own, Exception):
        raise own
    return own


def _woken_to_lead(waiting: _Waiting) -> bool:
    outcome = waiting.outcome
    return outcome.done() and not outcome.cancelled() and isinstance(outcome.result(), _Lead)


def _hand_over(group: _Collection) -> None:
    """Wake the first live waiter to send the next batch (a cancelled one cannot)."""
    while group.queue:
        first = group.queue[0]
        if first.outcome.done():
            group.queue.pop(0)
            continue
        group.sending = True  # held for it until it runs
        first.outcome.set_result(_LEAD)
        return


async def insert_together(
    collection: AsyncCollection[Document], docs: list[Document]
) -> list[bool | Exception]:
    """Insert `docs` now, as one unordered `insert_many` (for a caller that has a batch).

    Per document: True stored, False its `_id` existed, or the error it alone met.
    A single document goes with whatever single inserts are in flight (`insert`).
    """
    if len(docs) == 1:
        try:
            return [await insert(collection, docs[0])]
        except Exception as exc:
            return [exc]
    if not docs:
        return []
    return await _insert_many(collection, docs)


async def _insert_many(
    collection: AsyncCollection[Document], docs: list[Document]
) -> list[bool | Exception]:
    """Per document: True stored, False a duplicate `_id`, or the error it alone met."""
    if len(docs) == 1:
        try:
            await collection.insert_one(docs[0])
        except DuplicateKeyError:
            return [False]
        return [True]
    try:
        await collection.insert_many(docs, ordered=False)
    except BulkWriteError as exc:
        if exc.details.get("writeConcernErrors"):
            raise
        results: list[bool | Exception] = [True] * len(docs)
        for error in exc.details.get("writeErrors", []):
            index = int(error["index"])
            if error.get("code") == DUPLICATE_KEY:
                results[index] = False
            else:
                results[index] = WriteError(error.get("errmsg", ""), error.get("code"), error)
        return results
    return [True] * len(docs)
