"""One bad message never stalls its partition: values the store or the sweeper cannot
take (NaN, a duration of 1e15 s) are dead-lettered, and the next message on the same
partition is handled within seconds (issue 10: a NaN task was redelivered 90+ times)."""

import json
import time
import uuid
from typing import Any

from tests.e2e.test_walking_skeleton import marker, script_transfer
from tests.factories import approval_request
from tests.support import fake_openai
from tests.support.approval_e2e import Bus, read_all
from tests.support.infra import Infra
from tests.support.stack import Stack
from tests.support.wait import eventually

WITHIN_SECONDS = 20


async def letters_for(
    infra: Infra, topic: str, key: str, *, at_least: int = 1
) -> list[dict[str, Any]]:
    letters = [r for r in await read_all(infra, f"{topic}.dlq") if r.get("key") == key]
    return letters if len(letters) >= at_least else []


async def test_a_task_with_nan_is_dead_lettered_and_the_next_task_runs(
    infra: Infra, stack: Stack, llm: tuple[fake_openai.ScriptedLLM, str]
) -> None:
    tag = marker()
    script_transfer(llm[0], tag, 50, "bob")
    key = f"k-{uuid.uuid4().hex[:8]}"
    good = {"task_id": f"run-{uuid.uuid4().hex[:12]}", "input": f"Transfer 50 to Bob {tag}"}
    bad = {**good, "task_id": f"run-{uuid.uuid4().hex[:12]}", "metadata": {"x": float("nan")}}
    async with Bus(infra, stack) as bus:
        topic = bus.topics.agent_tasks
        # json.dumps writes the NaN literal, as the producer in the issue did.
        await bus.send(topic, json.dumps({**bad, "agent": "banking"}).encode(), key=key)
        await bus.send(topic, json.dumps({**good, "agent": "banking"}).encode(), key=key)
    sent = time.monotonic()
    async with stack.agent() as agent:

        async def completed() -> bool:
            response = await agent.get(f"/v1/runs/{good['task_id']}")
            return response.status_code == 200 and response.json()["status"] == "completed"

        await eventually(completed, timeout=WITHIN_SECONDS, what="the good task's run")
        assert time.monotonic() - sent < WITHIN_SECONDS
        missing = await agent.get(f"/v1/runs/{bad['task_id']}")
        assert missing.status_code == 404, "the NaN task never became a run"
    letters = await eventually(lambda: letters_for(infra, topic, key), what="the dead letter")
    assert [letter["consumer_group"] for letter in letters] == [stack.prefix + "hitl-agent"]
    assert "metadata" in letters[0]["error"]


async def test_an_overflowing_escalation_is_dead_lettered_and_the_next_request_stored(
    infra: Infra, stack: Stack
) -> None:
    run = f"r-{uuid.uuid4().hex[:8]}"
    bad: dict[str, Any] = json.loads(approval_request(run_id=run).model_dump_json())
    bad["escalation_seconds"] = 1e15
    good = approval_request(run_id=run)
    async with Bus(infra, stack) as bus:
        topic = bus.topics.approval_requested
        await bus.send(topic, json.dumps(bad).encode(), key=run)
        await bus.request(good)
    sent = time.monotonic()
    async with stack.reviewer() as reviewer:

        async def stored(cid: str) -> bool:
            return (await reviewer.get(f"/v1/approvals/{cid}")).status_code == 200

        await eventually(lambda: stored(good.correlation_id), timeout=WITHIN_SECONDS)
        assert time.monotonic() - sent < WITHIN_SECONDS
        assert not await stored(bad["correlation_id"])
        # The sweeper keeps working: the list (which runs no sweep of its own) still answers.
        listed = await reviewer.get("/v1/approvals", params={"run_id": run})
        assert listed.status_code == 200
        assert [a["correlation_id"] for a in listed.json()["items"]] == [good.correlation_id]
    letters = await eventually(
        lambda: letters_for(infra, topic, run, at_least=2), what="the dead letters"
    )
    # Both consumers of approval.requested (approval and notifier) refuse it, each once.
    groups = sorted(letter["consumer_group"] for letter in letters)
    assert groups == [stack.prefix + "hitl-approval", stack.prefix + "hitl-notifier"]
    assert all("escalation_seconds" in letter["error"] for letter in letters)
