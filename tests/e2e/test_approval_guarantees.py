"""The approval service's guarantees, end to end: agent, approval and notifier processes,
the real `openai` client against the scripted model, real Kafka and FerretDB.

- exactly one of 50 concurrent decisions wins, on each of 20 approvals;
- the same `approval.requested` delivered 5 times is one approval and one notification;
- a crash between the store write and the publish loses nothing (outbox).
"""

import asyncio
import functools
import statistics
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.factories import approval_request
from tests.support.approval_e2e import (
    PEOPLE,
    Bus,
    approval_stack,
    consumed_all,
    outbox_drained,
    read_all,
    reviewers_json,
)
from tests.support.fake_openai import Call, Say, ScriptedLLM
from tests.support.infra import Infra
from tests.support.recorder import Recorder
from tests.support.stack import Stack, approvals_of
from tests.support.wait import eventually

APPROVALS = 20
CONTENDERS = 50
CROWD: dict[str, tuple[str, list[str], list[str]]] = {
    f"r{i:02d}": (f"crowd-token-{i:02d}", ["reviewer"], []) for i in range(CONTENDERS)
}


@pytest.fixture(scope="module")
def stack(
    infra: Infra,
    llm: tuple[ScriptedLLM, str],
    webhooks: tuple[Recorder, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    env = {
        "APPROVAL_REVIEWERS": reviewers_json({**PEOPLE, **CROWD}),
        "OPENAI_API_KEY": "test-key",
        "OPENAI_BASE_URL": llm[1] + "/v1",
        "OPENAI_MODEL": "scripted",
        "NOTIFIER_WEBHOOK_URLS": webhooks[1] + "/hook",
        # Enough in checking that every approved transfer can actually execute.
        "AGENT_SEED_ACCOUNTS": '{"checking": 100000, "alice": 0, "bob": 0}',
    }
    logs = tmp_path_factory.mktemp("guarantees-logs")
    with approval_stack(infra, logs, env=env, services=("approval", "agent", "notifier")) as s:
        yield s


async def balances(agent: httpx.AsyncClient) -> dict[str, float]:
    response = await agent.get("/v1/accounts")
    response.raise_for_status()
    result: dict[str, float] = response.json()
    return result


async def start_transfer(
    stack: Stack, llm: ScriptedLLM, agent: httpx.AsyncClient, amount: float, to: str
) -> str:
    tag = f"[{uuid.uuid4().hex[:8]}]"
    llm.script(
        tag, [Call("transfer", {"to_account": to, "amount": amount})], Say("Final: {tool_results}")
    )
    response = await agent.post("/v1/runs", json={"input": f"Transfer {amount} to {to} {tag}"})
    assert response.status_code == 202, response.text
    run_id: str = response.json()["run_id"]
    return run_id


async def pending_of(reviewer: httpx.AsyncClient, run_id: str) -> str:
    async def probe() -> list[Any]:
        return await approvals_of(reviewer, run_id, "pending")

    (approval,) = await eventually(probe, timeout=60, what=f"the approval of run {run_id}")
    cid: str = approval["correlation_id"]
    return cid


async def finished(agent: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        state: dict[str, Any] = (await agent.get(f"/v1/runs/{run_id}")).json()
        return state if state["status"] in {"completed", "failed"} else None

    return await eventually(probe, timeout=90, what=f"run {run_id} to finish")


def tool_runs(records: list[dict[str, Any]], run_id: str) -> int:
    return sum(
        1
        for r in records
        if r.get("run_id") == run_id
        and r.get("type") == "tool_executed"
        and r.get("detail", {}).get("tool") == "transfer"
    )


async def test_fifty_concurrent_decisions_leave_one_winner_on_each_of_twenty_approvals(
    infra: Infra, stack: Stack, llm: tuple[ScriptedLLM, str]
) -> None:
    async with stack.agent() as agent, stack.reviewer() as reviewer:
        before = await balances(agent)
        amounts = [150.0 + i for i in range(APPROVALS)]
        runs = [await start_transfer(stack, llm[0], agent, a, "bob") for a in amounts]
        cids = [await pending_of(reviewer, run) for run in runs]

    durations, winners = [], []
    started = time.perf_counter()
    for cid in cids:
        # A fresh pool per burst: an idle pooled connection the server closed between
        # bursts would fail a request for reasons that have nothing to do with decisions.
        async with httpx.AsyncClient(
            base_url=stack.url("approval"),
            limits=httpx.Limits(max_connections=CONTENDERS),
            timeout=60,
        ) as http:

            async def attempt(i: int, cid: str = cid) -> tuple[str, httpx.Response]:
                verb = ("approve", "reject", "modify")[i % 3]
                body: dict[str, Any] = {"decision": verb, "comment": f"by r{i:02d}"}
                if verb == "modify":
                    body["arguments"] = {"to_account": "bob", "amount": 101 + i}
                headers = {"Authorization": f"Bearer {CROWD[f'r{i:02d}'][0]}"}
                # 503 + Retry-After (the store did not answer within the request's
                # budget on this loaded machine) means "try again": a client does.
                for _ in range(10):
                    response = await http.post(
                        f"/v1/approvals/{cid}/decision", json=body, headers=headers
                    )
                    if response.status_code != 503:
                        break
                    await asyncio.sleep(float(response.headers.get("Retry-After", "1")))
                return f"r{i:02d}", response

            burst = time.perf_counter()
            results = await asyncio.gather(*(attempt(i) for i in range(CONTENDERS)))
            durations.append(time.perf_counter() - burst)

        codes = sorted(r.status_code for _, r in results)
        assert codes == [200] + [409] * (CONTENDERS - 1), [
            (r.status_code, r.text[:300]) for _, r in results if r.status_code not in (200, 409)
        ][:3]
        ((name, won),) = [(n, r) for n, r in results if r.status_code == 200]
        state = won.json()
        assert state["decision"]["reviewer"] == name
        winners.append(state)
        for _, lost in results:
            if lost.status_code == 409:
                current = lost.json()["approval"]
                assert current["status"] == state["status"], "losers see the winner"
                assert current["decision"]["reviewer"] == name
    total = time.perf_counter() - started

    attempts = APPROVALS * CONTENDERS
    outcomes = {
        s: sum(1 for w in winners if w["status"] == s) for s in {w["status"] for w in winners}
    }
    print(
        f"\nconcurrency: {attempts} decision attempts on {APPROVALS} approvals "
        f"({CONTENDERS} each, mixed approve/reject/modify, {CONTENDERS} reviewers): "
        f"{len(winners)} winners, {attempts - len(winners)} x 409; outcomes {outcomes}; "
        f"burst p50 {statistics.median(durations) * 1000:.0f} ms, "
        f"max {max(durations) * 1000:.0f} ms; total {total:.2f} s"
    )

    expected = 0.0
    for state in winners:
        if state["status"] in {"approved", "modified"}:
            expected += state["decision"]["arguments"]["amount"]
    async with stack.agent() as agent:
        for run in runs:
            await finished(agent, run)
        after = await balances(agent)
    assert after["bob"] - before["bob"] == pytest.approx(expected)
    assert before["checking"] - after["checking"] == pytest.approx(expected)

    await outbox_drained(stack)
    decided = await read_all(infra, f"{stack.prefix}approval.decided")
    for cid in cids:
        assert sum(1 for d in decided if d["correlation_id"] == cid) == 1, cid
    lifecycle = await read_all(infra, f"{stack.prefix}agent.runs")
    for run, state in zip(runs, winners, strict=True):
        executes = state["status"] in {"approved", "modified"}
        assert tool_runs(lifecycle, run) == (1 if executes else 0), (run, state["status"])


async def test_the_same_request_five_times_is_one_approval_and_one_notification(
    infra: Infra, stack: Stack, webhooks: tuple[Recorder, str]
) -> None:
    event = approval_request()
    async with Bus(infra, stack) as bus:
        for _ in range(5):
            await bus.request(event)
    topic = f"{stack.prefix}approval.requested"
    for group in ("hitl-approval", "hitl-notifier"):
        await eventually(
            functools.partial(consumed_all, infra, f"{stack.prefix}{group}", topic),
            timeout=60,
            what=f"{group} to consume all five deliveries",
        )
    async with stack.reviewer() as reviewer:
        listed = await approvals_of(reviewer, event.run_id)
        history = (await reviewer.get(f"/v1/approvals/{event.correlation_id}/history")).json()
    assert [a["correlation_id"] for a in listed] == [event.correlation_id]
    assert [h["type"] for h in history if h["seq"] is not None] == ["requested"]

    async def notified() -> list[Any]:
        return webhooks[0].matching("correlation_id", event.correlation_id)

    hooks = await eventually(notified, timeout=30, what="the webhook notification")
    assert len(hooks) == 1


async def test_a_crash_between_store_and_publish_loses_no_decision(
    infra: Infra, stack: Stack, llm: tuple[ScriptedLLM, str]
) -> None:
    async with stack.agent() as agent, stack.reviewer() as reviewer:
        before = await balances(agent)
        run = await start_transfer(stack, llm[0], agent, 300, "alice")
        cid = await pending_of(reviewer, run)

    stack.stop("approval")
    stack.env_extra["APPROVAL_FAULT_CRASH_AFTER_COMMIT"] = "1"
    try:
        stack.start("approval")
        process = stack.procs["approval"]
        async with stack.reviewer() as reviewer:
            with pytest.raises(httpx.TransportError):
                await reviewer.post(f"/v1/approvals/{cid}/decision", json={"decision": "approve"})
        assert await asyncio.to_thread(process.wait, 30) == 137
    finally:
        del stack.env_extra["APPROVAL_FAULT_CRASH_AFTER_COMMIT"]

    # The decision is stored, not yet published, and the agent has not moved.
    from pymongo import AsyncMongoClient

    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongodb_url)
    try:
        stuck = await mongo[stack.database]["approval_events"].count_documents(
            {"correlation_id": cid, "published": False}
        )
    finally:
        await mongo.close()
    assert stuck == 1
    async with stack.agent() as agent:
        assert (await agent.get(f"/v1/runs/{run}")).json()["status"] == "awaiting_approval"

    stack.start("approval")
    async with stack.agent() as agent, stack.reviewer() as reviewer:
        done = await finished(agent, run)
        assert done["status"] == "completed"
        assert "Transferred 300.00 from checking to alice" in done["output"]
        after = await balances(agent)
        assert after["alice"] - before["alice"] == 300, "moved exactly once"
        view = (await reviewer.get(f"/v1/approvals/{cid}")).json()
        assert view["status"] == "approved"
        assert view["decision"]["reviewer"] == "dev"
    await outbox_drained(stack)
    decided = await read_all(infra, f"{stack.prefix}approval.decided")
    assert sum(1 for d in decided if d["correlation_id"] == cid) == 1
    lifecycle = await read_all(infra, f"{stack.prefix}agent.runs")
    assert tool_runs(lifecycle, run) == 1
