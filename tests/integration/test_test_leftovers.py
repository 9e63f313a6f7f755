"""The test harness removes what its stacks made on a shared broker and store: their
topics (hitl's, their DLQs, anything else under the prefix) and their database, and
nothing of anybody else's."""

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
    mine, theirs = leftovers.topic_prefix(), leftovers.topic_prefix()
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


async def test_the_session_drops_what_its_stacks_registered(
    infra: Infra, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A registry of its own: the session's real one is the session's to empty.
    monkeypatch.setattr(leftovers, "_made", {})
    prefix = leftovers.topic_prefix()
    database = f"hitl_test_{prefix[1:-1]}"
    leftovers.made(prefix, database)
    await _make(infra, [prefix + "x"], database)

    # From inside a running event loop, as a session's teardown may be.
    leftovers.drop_made(infra.kafka_bootstrap_servers, infra.mongodb_url)

    assert prefix + "x" not in await _topics(infra)
    assert database not in await _databases(infra)
    assert leftovers._made == {}


@pytest.mark.parametrize("prefix", ["", "t", "t.", "tabc.", "t1234567.", "x12345678.", "t12345678"])
def test_a_prefix_that_could_name_other_runs_topics_is_refused(prefix: str) -> None:
    with pytest.raises(ValueError, match="not a test run's own topic prefix"):
        leftovers.made(prefix)


async def test_drop_refuses_such_a_prefix_too(infra: Infra) -> None:
    with pytest.raises(ValueError, match="not a test run's own topic prefix"):
        await leftovers.drop(infra.kafka_bootstrap_servers, infra.mongodb_url, {"t.": None})
