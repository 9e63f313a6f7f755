"""Batch ingestion through Kafka: one fetched batch mixing valid, duplicate and malformed
requests stores each valid request once and dead-letters each malformed one with its reason."""

import base64
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from hitl_contracts import ApprovalRequested
from pymongo import AsyncMongoClient

from tests.factories import approval_request
from tests.support.approval_e2e import Bus, approval_stack, client, read_all
from tests.support.infra import Infra
from tests.support.stack import Stack
from tests.support.wait import eventually


@pytest.fixture(scope="module")
def stack(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # Topics only: the test starts the service once its batch is waiting on the topic.
    with approval_stack(infra, tmp_path_factory.mktemp("batch-logs"), services=()) as s:
        yield s


async def test_a_mixed_batch_stores_each_valid_request_once_and_dead_letters_the_malformed(
    infra: Infra, stack: Stack
) -> None:
    run = f"r-{uuid.uuid4().hex[:8]}"
    first, second = approval_request(run_id=run), approval_request(run_id=run)
    garbage = b"\xff not json"
    wrong = json.dumps({"correlation_id": "c-x", "run_id": run}).encode()
    # The service starts only after all of them are on one partition (same key), so its
    # first fetch holds the whole mix.
    async with Bus(infra, stack) as bus:
        topic = bus.topics.approval_requested
        mix: list[bytes | ApprovalRequested] = [first, garbage, first, second, wrong, second]
        for value in mix:
            await bus.send(topic, value, key=run)
        stack.start("approval")

        async with client(stack, "ann") as ann:

            async def both_listed() -> list[dict[str, Any]] | None:
                page = (await ann.get("/v1/approvals", params={"run_id": run})).json()
                return page["items"] if len(page["items"]) >= 2 else None

            items = await eventually(both_listed, timeout=60, what="both valid requests")
            assert sorted(i["correlation_id"] for i in items) == sorted(
                [first.correlation_id, second.correlation_id]
            )
            for request in (first, second):
                history = (await ann.get(f"/v1/approvals/{request.correlation_id}/history")).json()
                assert [h["type"] for h in history] == ["requested"]

        async def two_letters() -> list[dict[str, Any]] | None:
            letters = [r for r in await read_all(infra, f"{topic}.dlq") if r["key"] == run]
            return letters if len(letters) >= 2 else None

        letters = await eventually(two_letters, timeout=30, what="two dead letters")
        letters.sort(key=lambda letter: letter["offset"])
        assert [base64.b64decode(x["original_b64"]) for x in letters] == [garbage, wrong]
        assert "Invalid JSON" in letters[0]["error"]
        assert "agent: Field required" in letters[1]["error"]

        mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongodb_url)
        try:
            events = mongo[stack.database]["approval_events"]
            stored = await events.count_documents(
                {"correlation_id": {"$in": [first.correlation_id, second.correlation_id]}}
            )
        finally:
            await mongo.close()
        assert stored == 2, "one stream entry per valid request, duplicates add none"
