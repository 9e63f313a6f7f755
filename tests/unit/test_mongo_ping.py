"""`ping` is bounded: a store that accepts connections but never answers is reported, fast.

That is what a hung FerretDB looks like (on PostgreSQL it deadlocked its pool under
load before our build's patch, and every later command, `ping` included, queued
forever); `/readyz` calls `ping` and must answer 503 then, not hang with the store.
"""

import asyncio
import time

import pytest
from hitl_shared.mongo import ping
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError


async def test_ping_of_a_silent_store_fails_within_its_timeout() -> None:
    held: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Accept and read, never answer: a server stuck behind a deadlock.
        held.append(writer)
        while await reader.read(4096):
            pass

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
        f"mongodb://127.0.0.1:{port}/", directConnection=True, serverSelectionTimeoutMS=30_000
    )
    try:
        t0 = time.monotonic()
        with pytest.raises(PyMongoError):
            await ping(client, timeout=0.5)
        # The client alone would wait 30 s for the server; the ping's bound wins.
        assert time.monotonic() - t0 < 5.0
        assert held, "the client did connect; the server just never answered"
    finally:
        await client.close()
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()
