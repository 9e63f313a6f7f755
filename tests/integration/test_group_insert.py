"""Concurrent unique-key inserts share round trips and each caller still learns its own outcome."""

import asyncio
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hitl_shared.mongo import insert_once
from pymongo import AsyncMongoClient, monitoring

from tests.integration.conftest import Database
from tests.support.infra import Infra


@dataclass
class Inserts(monitoring.CommandListener):
    seen: Counter[str] = field(default_factory=Counter)

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "insert":
            self.seen[str(event.command["insert"])] += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        return None

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        return None


async def test_concurrent_inserts_are_grouped_and_duplicates_lose(
    infra: Infra, db: Database
) -> None:
    listener = Inserts()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        infra.mongodb_url, tz_aware=True, event_listeners=[listener]
    )
    try:
        mine = client[db.name]
        assert await insert_once(mine, "cas", {"_id": "taken", "by": "first"})
        ids = [f"k{i}" for i in range(40)] + ["taken", "k3"]
        outcomes = await asyncio.gather(
            *(
                insert_once(mine, "cas", {"_id": id_, "by": f"caller {n}"})
                for n, id_ in enumerate(ids)
            )
        )
        # Each of the 40 fresh ids stored once; the existing one and the repeat lost.
        assert outcomes[:40] == [True] * 40
        assert outcomes[40:] == [False, False]
        assert await mine["cas"].count_documents({}) == 41
        assert (await mine["cas"].find_one({"_id": "taken"}) or {})["by"] == "first"
        assert (await mine["cas"].find_one({"_id": "k3"}) or {})["by"] == "caller 3"
        # The first call went alone; the other 42 queued behind it and shared batches.
        assert listener.seen["cas"] < 10
    finally:
        await client.close()


async def test_a_cancelled_caller_does_not_stall_the_others(db: Database) -> None:
    first = asyncio.create_task(insert_once(db, "cas", {"_id": "a"}))
    await asyncio.sleep(0)  # `first` is sending
    queued = [asyncio.create_task(insert_once(db, "cas", {"_id": f"q{i}"})) for i in range(5)]
    await asyncio.sleep(0)
    queued[0].cancel()
    assert await first
    done = await asyncio.wait_for(asyncio.gather(*queued[1:]), timeout=30)
    assert done == [True] * 4
    assert await db["cas"].find_one({"_id": "q4"}) is not None
