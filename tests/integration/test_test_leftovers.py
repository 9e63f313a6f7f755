"""The test harness removes what its stacks made on a shared broker and store: their
topics (hitl's, their DLQs, anything else under the prefix) and their database, and
nothing of anybody else's."""

import uuid

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from hitl_shared.topics import Topics, dlq
from pymongo import AsyncMongoClient

from tests.support import leftovers
from tests.support.infra import Infra


async def _topics(infra: Infra) -> set[str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap_servers)
    await admin.start()
    try:
        return set(await admin.list_topics())
    finally:
        await admin.close()


async def _make(infra: Infra, names: list[str], database: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=infra.kafka_bootstrap_servers)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(n, num_partitions=1, replication_factor=1) for n in names]
        )
    finally:
        await admin.close()
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(infra.mongodb_url)
    try:
        await client[database]["things"].insert_one({"_id": "x"})
    finally:
        await client.close()


async def _databases(infra: Infra) -> list[str]:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(infra.mongodb_url)
    try:
        return await client.list_database_names()
    finally:
        await client.close()


async def test_a_stacks_topics_and_database_go_and_nothing_else(infra: Infra) -> None:
    mine, theirs = (f"t{uuid.uuid4().hex[:8]}." for _ in range(2))
    requested = Topics(mine).approval_requested
    my_topics = [requested, dlq(requested), mine + "made.by.a.test"]
    their_topic = Topics(theirs).approval_requested
    my_db, their_db = f"hitl_test_{mine[1:-1]}", f"hitl_test_{theirs[1:-1]}"
    await _make(infra, [*my_topics], my_db)
    await _make(infra, [their_topic], their_db)
    try:
        await leftovers.drop(infra.kafka_bootstrap_servers, infra.mongodb_url, {mine: my_db})

        left = await _topics(infra)
        assert not left & set(my_topics)
        assert their_topic in left
        databases = await _databases(infra)
        assert my_db not in databases
        assert their_db in databases
    finally:
        await leftovers.drop(infra.kafka_bootstrap_servers, infra.mongodb_url, {theirs: their_db})
    assert their_topic not in await _topics(infra)


async def test_the_session_drops_what_its_stacks_registered(infra: Infra) -> None:
    prefix = f"t{uuid.uuid4().hex[:8]}."
    database = f"hitl_test_{prefix[1:-1]}"
    await _make(infra, [prefix + "x"], database)
    leftovers.made(prefix, database)

    # From inside a running event loop, as a session's teardown may be.
    leftovers.drop_made(infra.kafka_bootstrap_servers, infra.mongodb_url)

    assert prefix + "x" not in await _topics(infra)
    assert database not in await _databases(infra)


def test_an_empty_prefix_is_refused_it_would_name_every_topic() -> None:
    with pytest.raises(ValueError, match="must not be empty"):
        leftovers.made("")
