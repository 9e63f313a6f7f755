"""MongoDB plumbing: one PyMongo async client factory, shared error helpers.

Works on MongoDB and on FerretDB 1.x alike: no transactions, change streams, TTL
indexes or $lookup. Atomic steps are single-document inserts guarded by a unique
key, the only compare-and-swap that is atomic on both.
"""

from typing import Any

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from hitl_shared.settings import CommonSettings

Document = dict[str, Any]


def make_client(settings: CommonSettings) -> AsyncMongoClient[Document]:
    return AsyncMongoClient(
        settings.mongodb_url,
        tz_aware=True,
        serverSelectionTimeoutMS=5_000,
        connectTimeoutMS=5_000,
    )


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
