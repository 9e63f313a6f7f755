"""MongoDB plumbing: one PyMongo async client factory, shared error helpers.

Works on MongoDB and on FerretDB 1.x alike: no transactions, change streams, TTL
indexes or $lookup. Atomic steps are single-document inserts guarded by a unique
key, the only compare-and-swap that is atomic on both.
"""

import logging
from typing import Any

import pymongo
from pymongo import AsyncMongoClient, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import OperationFailure

from hitl_shared import group_insert, telemetry
from hitl_shared.settings import CommonSettings
from hitl_shared.slow_commands import SlowCommands

Document = dict[str, Any]

log = logging.getLogger(__name__)

# Server codes for "an index of that name exists with another definition".
_INDEX_CONFLICTS = {85, 86}  # IndexOptionsConflict, IndexKeySpecsConflict
_INDEX_NOT_FOUND = 27
_NAMESPACE_NOT_FOUND = 26
# Per client (by id): whether its server is FerretDB.
_FERRETDB: dict[int, bool] = {}


def make_client(settings: CommonSettings, **options: Any) -> AsyncMongoClient[Document]:
    """A client; `options` (e.g. `timeoutMS`) add to or override the defaults.

    `event_listeners` in `options` are added to the slow-command log, not replacing it.
    """
    defaults: dict[str, Any] = {"serverSelectionTimeoutMS": 5_000, "connectTimeoutMS": 5_000}
    listeners = list(options.pop("event_listeners", []))
    if settings.mongodb_slow_ms > 0:
        listeners.append(SlowCommands(settings.mongodb_slow_ms))
    if telemetry.recording():
        # Store round trips as spans in the trace of whatever made them.
        listeners.append(telemetry.StoreSpans())
    if listeners:
        defaults["event_listeners"] = listeners
    return AsyncMongoClient(settings.mongodb_url, tz_aware=True, **{**defaults, **options})


def database(
    client: AsyncMongoClient[Document], settings: CommonSettings
) -> AsyncDatabase[Document]:
    return client[settings.mongodb_database]


async def insert_once(db: AsyncDatabase[Document], collection: str, doc: Document) -> bool:
    """Insert `doc`; False when its unique key already exists (someone else won).

    Concurrent calls for one collection share a round trip (`group_insert`).
    """
    return await group_insert.insert(db[collection], doc)


# A store that does not answer a `ping` in this long is reported as not ready.
PING_TIMEOUT_S = 2.0


async def ping(client: AsyncMongoClient[Document], *, timeout: float = PING_TIMEOUT_S) -> None:
    """Raise unless the store answers a `ping` within `timeout` seconds.

    Bounded because a hung store (FerretDB 1.24 on PostgreSQL deadlocked its pool under
    load before our patch; a ping then queued forever) must make `/readyz` say so, not
    hang with it. `pymongo.timeout` bounds server selection too.
    """
    with pymongo.timeout(timeout):
        await client.admin.command("ping")


async def is_ferretdb(db: AsyncDatabase[Document]) -> bool:
    """Whether the server is FerretDB (asked once per client)."""
    client = db.client
    known = _FERRETDB.get(id(client))
    if known is None:
        info = await client.admin.command("buildInfo")
        known = _FERRETDB[id(client)] = "ferretdbVersion" in info
    return known


async def ensure_query_index(
    collection: AsyncCollection[Document], keys: Any, **options: Any
) -> str:
    """A non-unique index that only speeds up queries: `ensure_index`, except on FerretDB.

    FerretDB 1.x answers no query from a secondary index (only `_id` lookups, in our
    build), yet every insert, update and delete maintains each one (a SQLite
    expression index over the whole document: 3x the cost of an insert with the
    approval listing's ten). There it is dropped if an older hitl created it.
    """
    if not await is_ferretdb(collection.database):
        return await ensure_index(collection, keys, **options)
    name = str(IndexModel(keys, **options).document["name"])
    if name not in await collection.index_information():
        return ""
    try:
        await collection.drop_index(name)
        log.info("dropped index %s on %s: FerretDB only maintains it", name, collection.name)
    except OperationFailure as exc:
        # Another replica dropped it first.
        if exc.code not in (_INDEX_NOT_FOUND, _NAMESPACE_NOT_FOUND):
            raise
    return ""


async def ensure_index(collection: AsyncCollection[Document], keys: Any, **options: Any) -> str:
    """`create_index`, idempotent across upgrades.

    A database written by an older hitl may hold an index of the same name with
    another definition; MongoDB and FerretDB then refuse to start the service.
    That index is ours, so it is replaced (several replicas may race here: a
    drop that finds nothing and a create that finds the new one are both fine).
    """
    model = IndexModel(keys, **options)
    name = str(model.document["name"])
    try:
        return await collection.create_index(keys, **options)
    except OperationFailure as exc:
        if exc.code not in _INDEX_CONFLICTS:
            raise
    log.warning("replacing index %s on %s: its definition changed", name, collection.name)
    try:
        await collection.drop_index(name)
    except OperationFailure as exc:
        if exc.code != _INDEX_NOT_FOUND:
            raise
    return await collection.create_index(keys, **options)
