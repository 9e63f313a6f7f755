"""MongoDB plumbing: one PyMongo async client factory, shared error helpers.

Works on MongoDB and on FerretDB 1.x alike: no transactions, change streams, TTL
indexes or $lookup. Atomic steps are single-document inserts guarded by a unique
key, the only compare-and-swap that is atomic on both.
"""

import logging
from typing import Any

from pymongo import AsyncMongoClient, IndexModel
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, OperationFailure

from hitl_shared.settings import CommonSettings

Document = dict[str, Any]

log = logging.getLogger(__name__)

# Server codes for "an index of that name exists with another definition".
_INDEX_CONFLICTS = {85, 86}  # IndexOptionsConflict, IndexKeySpecsConflict
_INDEX_NOT_FOUND = 27


def make_client(settings: CommonSettings, **options: Any) -> AsyncMongoClient[Document]:
    """A client; `options` (e.g. `timeoutMS`) add to or override the defaults."""
    defaults: dict[str, Any] = {"serverSelectionTimeoutMS": 5_000, "connectTimeoutMS": 5_000}
    return AsyncMongoClient(settings.mongodb_url, tz_aware=True, **{**defaults, **options})


def database(
    client: AsyncMongoClient[Document], settings: CommonSettings
) -> AsyncDatabase[Document]:
    return client[settings.mongodb_database]


async def insert_once(db: AsyncDatabase[Document], collection: str, doc: Document) -> bool:
    """Insert `doc`; False when its unique key already exists (someone else won)."""
    try:
        await db[collection].insert_one(doc)
    except DuplicateKeyError:
        return False
    return True


async def ping(client: AsyncMongoClient[Document]) -> None:
    await client.admin.command("ping")


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
