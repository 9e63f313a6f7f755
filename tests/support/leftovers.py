"""What test stacks leave on a shared broker and store, removed when they are done.

Every `Stack` makes its own topics (`t<suffix>.…`, their `.dlq`s) and its own database.
On testcontainers they go with the containers; on a long-lived broker and store (the
development infra of `deploy/local/infra.sh`, which every clone on a machine shares) they
piled up: 17,000 partitions left by earlier runs slowed that Kafka down and finally ran it
out of heap. So each stack is registered here when made, and the session removes what its
own stacks made (never another run's: runs of other clones may be using theirs).
"""

import asyncio
import sys
import threading
import uuid

from aiokafka.admin import AIOKafkaAdminClient
from pymongo import AsyncMongoClient

_made: dict[str, str | None] = {}  # topic prefix -> database (None: topics only)


def made(prefix: str, database: str | None = None) -> None:
    # Everything starts with "": an empty prefix would name every topic on the broker.
    if not prefix:
        raise ValueError("a topic prefix to remove must not be empty")
    _made[prefix] = database


def topic_prefix() -> str:
    """A fresh topic prefix for a test's own topics, removed when the session ends."""
    prefix = f"t{uuid.uuid4().hex[:8]}."
    made(prefix)
    return prefix


async def drop(kafka: str, mongodb_url: str, prefixes: dict[str, str | None]) -> None:
    """Delete the topics under `prefixes` and drop their databases."""
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(mongodb_url)
    try:
        for database in prefixes.values():
            if database is not None:
                await client.drop_database(database)
    finally:
        await client.close()
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka)
    await admin.start()
    try:
        # hitl's topics and their DLQs, and whatever else a test made under the prefix.
        prefixes_ = tuple(p for p in prefixes if p)
        doomed = sorted(t for t in await admin.list_topics() if t.startswith(prefixes_))
        if prefixes_ and doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()


def drop_made(kafka: str, mongodb_url: str) -> None:
    """Drop what this session's stacks made; a failure is reported, never raised."""
    prefixes = dict(_made)
    if not prefixes:
        return
    failure: list[BaseException] = []

    def run() -> None:  # in its own thread: a session's teardown may sit in a running loop
        try:
            asyncio.run(drop(kafka, mongodb_url, prefixes))
        except Exception as exc:
            failure.append(exc)

    worker = threading.Thread(target=run, name="hitl-test-leftovers")
    worker.start()
    worker.join()
    if failure:
        print(
            f"[tests] could not remove the stacks' topics and databases: {failure[0]!r}",
            file=sys.stderr,
        )
    else:
        _made.clear()
