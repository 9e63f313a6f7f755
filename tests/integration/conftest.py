"""Integration fixtures: one adapter against a real Kafka or MongoDB-compatible server."""

import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from tests.support.infra import Infra, provide

Database = AsyncDatabase[dict[str, object]]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def infra() -> Iterator[Infra]:
    with provide() as endpoints:
        yield endpoints


@contextlib.asynccontextmanager
async def fresh_database(infra: Infra) -> AsyncIterator[Database]:
    """A database of its own, dropped afterwards."""
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(infra.mongodb_url, tz_aware=True)
    name = f"hitl_it_{uuid.uuid4().hex[:8]}"
    try:
        yield client[name]
    finally:
        await client.drop_database(name)
        await client.close()


@pytest.fixture
async def db(infra: Infra) -> AsyncIterator[Database]:
    async with fresh_database(infra) as database:
        yield database
