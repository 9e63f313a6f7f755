"""The agent's outbox markers of delivered checkpoints go in one store command."""

import uuid
from typing import Any

import pytest
from hitl_agent.adapters.runs import OUTBOX, RunStore
from pymongo import AsyncMongoClient, monitoring

from tests.support.infra import Infra

pytestmark = pytest.mark.integration


class Deletes(monitoring.CommandListener):
    def __init__(self) -> None:
        self.commands: list[dict[str, Any]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "delete":
            self.commands.append(dict(event.command))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        return None

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        return None


async def test_delivered_markers_are_removed_together_and_only_those(infra: Infra) -> None:
    listener = Deletes()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        infra.mongodb_url, event_listeners=[listener]
    )
    db = client[f"hitl_it_{uuid.uuid4().hex[:8]}"]
    try:
        await db[OUTBOX].insert_many([{"_id": f"run-1:{seq}", "at": seq} for seq in range(6)])
        store = RunStore(db)
        # One id that has no marker (removed by another replica already): no error.
        await store.delivered_many(["run-1:0", "run-1:2", "run-1:4", "run-1:9"])
        await store.delivered_many([])
        left = sorted([doc["_id"] async for doc in db[OUTBOX].find({})])
    finally:
        await client.drop_database(db.name)
        await client.close()
    assert left == ["run-1:1", "run-1:3", "run-1:5"]
    (command,) = listener.commands  # one command for the four, none for the empty list
    assert [d["q"] for d in command["deletes"]] == [
        {"_id": "run-1:0"},
        {"_id": "run-1:2"},
        {"_id": "run-1:4"},
        {"_id": "run-1:9"},
    ]
