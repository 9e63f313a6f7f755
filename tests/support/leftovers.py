"""What test stacks leave on a shared broker and store, removed when they are done.

Every `Stack` makes its own topics (`t<suffix>.…`, their `.dlq`s) and its own database.
On testcontainers they go with the containers; on a long-lived broker and store (the
development infra of `deploy/local/infra.sh`, which every clone on a machine shares) they
piled up: 17,000 partitions left by earlier runs slowed that Kafka down and finally ran it
out of heap. So each stack (and each test's own topic prefix) is registered here when
made, and the session removes what it made (never another run's: runs of other clones
may be using theirs).
"""

import asyncio
import re
import sys
import threading
import uuid
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient
from pymongo import AsyncMongoClient

# `t` + at least 8 random letters or digits + `.`: a prefix of one run's topics only.
# Anything shorter ("", "t", "t.") would name other runs' topics, or all of them.
PREFIX = re.compile(r"t[0-9a-z]{8,}\.")
# Bounds on a teardown against a server that is gone or hung.
TIMEOUT_S = 60.0

_made: dict[str, str | None] = {}  # topic prefix -> database (None: topics only)


def _checked(prefix: str) -> str:
    if not PREFIX.fullmatch(prefix):
        raise ValueError(f"{prefix!r}: not a test run's own topic prefix (t<8+ chars>.)")
    return prefix


def made(prefix: str, database: str | None = None) -> None:
    _made[_checked(prefix)] = database


def topic_prefix() -> str:
    """A fresh topic prefix for a test's own topics, removed when the session ends."""
    prefix = f"t{uuid.uuid4().hex[:8]}."
    made(prefix)
    return prefix


async def drop(kafka: str, mongodb_url: str, prefixes: dict[str, str | None]) -> None:
    """Delete the topics under `prefixes` and drop their databases.

    Both are attempted whatever the other did; the first failure is raised after."""
    prefixes = {_checked(p): db for p, db in prefixes.items()}
    failures: list[BaseException] = []
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
        mongodb_url, serverSelectionTimeoutMS=5000
    )
    try:
        for database in prefixes.values():
            if database is not None:
                await client.drop_database(database)
    except Exception as exc:
        failures.append(exc)
    finally:
        await client.close()
    try:
        await _delete_topics(kafka, tuple(prefixes))
    except Exception as exc:
        failures.append(exc)
    if failures:
        raise failures[0]


async def _delete_topics(kafka: str, prefixes: tuple[str, ...]) -> None:
    if not prefixes:
        return
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka, request_timeout_ms=10_000)
    await admin.start()
    try:
        # hitl's topics, their DLQs, and whatever else a test made under the prefix.
        doomed = sorted(t for t in await admin.list_topics() if t.startswith(prefixes))
        if not doomed:
            return
        response: Any = await admin.delete_topics(doomed)
        # The broker answers per topic; an error there (not authorised, say) is no
        # exception. A topic already gone (3: unknown) is what was wanted.
        failed = [
            (topic, code)
            for topic, code, *_ in getattr(response, "topic_error_codes", [])
            if code not in (0, 3)
        ]
        if failed:
            raise RuntimeError(f"Kafka refused to delete {len(failed)} topics: {failed[:3]}")
    finally:
        await admin.close()


def drop_made(kafka: str, mongodb_url: str) -> None:
    """Drop what this session made; a failure is reported, never raised."""
    prefixes = dict(_made)
    if not prefixes:
        return
    failure: list[BaseException] = []

    def run() -> None:  # in its own thread: a session's teardown may sit in a running loop
        try:
            asyncio.run(asyncio.wait_for(drop(kafka, mongodb_url, prefixes), TIMEOUT_S))
        except Exception as exc:
            failure.append(exc)

    worker = threading.Thread(target=run, name="hitl-test-leftovers", daemon=True)
    worker.start()
    worker.join(TIMEOUT_S + 5)
    if worker.is_alive():
        failure.append(TimeoutError(f"not done in {TIMEOUT_S + 5:.0f} s"))
    if failure:
        # Past pytest's capture: this runs in the last test's teardown, whose output
        # pytest would show only if that teardown failed.
        print(
            f"[tests] could not remove this session's topics and databases "
            f"({len(prefixes)} prefixes): {failure[0]!r}",
            file=sys.__stderr__,
        )
    else:
        _made.clear()
