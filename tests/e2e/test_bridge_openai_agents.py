"""The OpenAI Agents SDK bridge, end to end: the real `openai-agents` from PyPI runs the
example agent (examples/openai_agents/payables.py) as its own processes against the real
approval service, Kafka and store; the model is the scripted OpenAI-compatible server.

The bridge acts as `pat` (roles agent and reviewer), so four-eyes has someone to refuse.
"""

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from hitl_client import AsyncClient, Forbidden
from pymongo import AsyncMongoClient, MongoClient

from tests.support import fake_openai
from tests.support.approval_e2e import PEOPLE, approval_stack, reviewers_json
from tests.support.fake_openai import Call, Say
from tests.support.infra import Infra
from tests.support.stack import Stack
from tests.support.wait import eventually

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "openai_agents" / "payables.py"
BRIDGE = ("pat", "pat-token")
PEOPLE_HERE = {**PEOPLE, BRIDGE[0]: (BRIDGE[1], ["agent", "reviewer"], ["finance"])}
WAIT = 180.0  # deadlines on a busy 2-core machine, not sleeps

LLM = tuple[fake_openai.ScriptedLLM, str]


@pytest.fixture(scope="module")
def stack(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    logs = tmp_path_factory.mktemp("agents-bridge-logs")
    env = {"APPROVAL_REVIEWERS": reviewers_json(PEOPLE_HERE)}
    with approval_stack(infra, logs, env=env, services=("approval",)) as s:
        yield s


@pytest.fixture(scope="module")
async def mongo(infra: Infra) -> AsyncIterator[AsyncMongoClient[dict[str, Any]]]:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongodb_url)
    yield client
    await client.close()


class Bridge:
    """The example's bridge: `start` runs, `serve` processes (each its own OS process)."""

    def __init__(self, stack: Stack, llm: LLM, logs: Path, **env: str) -> None:
        self.stack, self.logs = stack, logs
        self.db = f"{stack.database}_{uuid.uuid4().hex[:6]}"
        self.env = {
            **os.environ,
            "HITL_APPROVAL_URL": stack.url("approval"),
            "HITL_TOKEN": BRIDGE[1],
            "MONGODB_URL": stack.infra.mongodb_url,
            "PAYABLES_DB": self.db,
            "OPENAI_BASE_URL": llm[1] + "/v1",
            "OPENAI_API_KEY": "test-key",
            "OPENAI_MODEL": "scripted",
            "OPENAI_AGENTS_DISABLE_TRACING": "1",
            "PAYABLES_POLL_SECONDS": "0.5",
            "PAYABLES_LEASE_SECONDS": "10",
            **env,
        }
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, run_id: str, text: str, **env: str) -> dict[str, Any]:
        done = subprocess.run(
            [sys.executable, str(EXAMPLE), "start", run_id, text],
            env={**self.env, **env},
            capture_output=True,
            timeout=WAIT,
            check=False,
        )
        assert done.returncode == 0, done.stderr.decode()[-3000:]
        status: dict[str, Any] = json.loads(done.stdout.decode().splitlines()[-1])
        return status

    def serve(self, **env: str) -> subprocess.Popen[bytes]:
        log = (self.logs / f"serve-{len(self.procs)}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, str(EXAMPLE), "serve"],
            env={**self.env, **env},
            stdout=log,
            stderr=log,
        )
        self.procs.append(proc)
        return proc

    async def ready(self) -> None:
        """Every `serve` process has started serving (imports take a while on a busy box)."""

        async def serving() -> bool:
            logs = [self.logs / f"serve-{i}.log" for i in range(len(self.procs))]
            return all(p.exists() and "serving runs" in p.read_text() for p in logs)

        await eventually(serving, timeout=WAIT, interval=0.2, what="the bridges to serve")

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()

    def logs_text(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in self.logs.glob("*.log"))


@pytest.fixture
def bridge(stack: Stack, llm: LLM, tmp_path: Path) -> Iterator[Bridge]:
    b = Bridge(stack, llm, tmp_path)
    try:
        yield b
    finally:
        b.close()
        client: MongoClient[dict[str, Any]]
        with MongoClient(stack.infra.mongodb_url) as client:
            client.drop_database(b.db)


def reviewer(stack: Stack, who: str = "ann") -> AsyncClient:
    return AsyncClient(stack.url("approval"), PEOPLE_HERE[who][0])


async def finished(
    mongo: AsyncMongoClient[dict[str, Any]], bridge: Bridge, run_id: str
) -> dict[str, Any]:
    """The run's final snapshot, once it is completed or failed."""

    async def head() -> dict[str, Any] | None:
        docs = mongo[bridge.db]["openai_agents_snapshots"].find({"run_id": run_id})
        snaps = sorted([d async for d in docs], key=lambda d: d["seq"])
        last = snaps[-1] if snaps else None
        return last if last is not None and last["kind"] != "interrupted" else None

    try:
        return await eventually(head, timeout=WAIT, interval=0.2, what=f"run {run_id} to end")
    except AssertionError:
        print(bridge.logs_text())
        raise


async def payments(mongo: AsyncMongoClient[dict[str, Any]], bridge: Bridge) -> list[Any]:
    return [p async for p in mongo[bridge.db]["payments"].find({})]


def new_run(llm: LLM, *turns: fake_openai.Turn) -> tuple[str, str]:
    marker = f"INV-{uuid.uuid4().hex[:8]}"
    llm[0].script(marker, *turns)
    return f"run-{marker}", f"{marker}: pay the ACME invoice"


def tool_messages(llm: LLM, marker_text: str) -> list[str]:
    marker = marker_text.split(":")[0]
    last = llm[0].calls_for(marker)[-1]["messages"]
    return [str(m["content"]) for m in last if m["role"] == "tool"]


async def test_approve_runs_the_tool_once_and_the_run_completes(
    stack: Stack, llm: LLM, bridge: Bridge, mongo: AsyncMongoClient[dict[str, Any]]
) -> None:
    run_id, text = new_run(
        llm, [Call("transfer", {"to_account": "acme", "amount": 1200})], Say("done: {tool_results}")
    )
    status = bridge.start(run_id, text)
    assert status["status"] == "awaiting_approval"
    [pending] = status["pending"]
    assert pending["tool"] == "transfer"
    assert pending["arguments"] == {"to_account": "acme", "amount": 1200}
    assert await payments(mongo, bridge) == []  # nothing ran before a human said so
    bridge.serve()
    async with reviewer(stack) as ann:
        state = await ann.get(pending["correlation_id"])
        assert state.request.requested_by == "pat"  # from the bridge's token
        assert state.request.run_id == run_id
        assert state.request.tool_call_id == pending["call_id"]
        assert state.request.arguments_schema is not None  # the tool's own schema
        await ann.decide(pending["correlation_id"], "approve", comment="invoice checked")
    end = await finished(mongo, bridge, run_id)
    assert end["kind"] == "completed"
    assert end["final_output"] == "done: sent 1200 to acme"
    [paid] = await payments(mongo, bridge)
    assert (paid["to_account"], paid["amount"], paid["_id"]) == (
        "acme",
        1200,
        pending["correlation_id"],
    )
    assert len(llm[0].calls_for(text.split(":")[0])) == 2


async def test_modify_runs_the_tool_with_the_reviewers_arguments(
    stack: Stack, llm: LLM, bridge: Bridge, mongo: AsyncMongoClient[dict[str, Any]]
) -> None:
    run_id, text = new_run(
        llm, [Call("transfer", {"to_account": "acme", "amount": 1200})], Say("done: {tool_results}")
    )
    [pending] = bridge.start(run_id, text)["pending"]
    bridge.serve()
    async with reviewer(stack) as ann:
        await ann.decide(
            pending["correlation_id"],
            "modify",
            arguments={"to_account": "acme", "amount": 1000},
            comment="only the undisputed part",
        )
    end = await finished(mongo, bridge, run_id)
    assert end["kind"] == "completed"
    [paid] = await payments(mongo, bridge)
    assert paid["amount"] == 1000  # the edit, never the model's 1200
    [told] = tool_messages(llm, text)
    assert "edited arguments" in told
    assert "sent 1000 to acme" in told


async def test_reject_tells_the_model_the_reviewers_words(
    stack: Stack, llm: LLM, bridge: Bridge, mongo: AsyncMongoClient[dict[str, Any]]
) -> None:
    run_id, text = new_run(
        llm, [Call("transfer", {"to_account": "acme", "amount": 1200})], Say("ok: {tool_results}")
    )
    [pending] = bridge.start(run_id, text)["pending"]
    bridge.serve()
    async with reviewer(stack) as ann:
        await ann.decide(
            pending["correlation_id"], "reject", comment="Invoice 4711 was paid by cheque"
        )
    end = await finished(mongo, bridge, run_id)
    assert end["kind"] == "completed"
    assert "Invoice 4711 was paid by cheque" in end["final_output"]
    assert "Invoice 4711 was paid by cheque" in tool_messages(llm, text)[0]
    assert await payments(mongo, bridge) == []


async def test_expiry_fails_closed(
    stack: Stack, llm: LLM, bridge: Bridge, mongo: AsyncMongoClient[dict[str, Any]]
) -> None:
    run_id, text = new_run(
        llm, [Call("transfer", {"to_account": "acme", "amount": 1200})], Say("ok: {tool_results}")
    )
    # Asked with a 2 s deadline; the serving bridge (default 1800 s) still honours it.
    [pending] = bridge.start(run_id, text, PAYABLES_APPROVAL_TIMEOUT="2")["pending"]
    bridge.serve()
    end = await finished(mongo, bridge, run_id)
    async with reviewer(stack) as ann:
        assert (await ann.get(pending["correlation_id"])).status == "expired"
    assert end["kind"] == "completed"
    assert "No reviewer decided in time" in tool_messages(llm, text)[0]
    assert await payments(mongo, bridge) == []


async def test_two_risky_calls_in_one_turn_need_two_decisions(
    stack: Stack, llm: LLM, bridge: Bridge, mongo: AsyncMongoClient[dict[str, Any]]
) -> None:
    run_id, text = new_run(
        llm,
        [
            Call("transfer", {"to_account": "acme", "amount": 1200}),
            Call("transfer", {"to_account": "globex", "amount": 800}),
        ],
        Say("ok: {tool_results}"),
    )
    status = bridge.start(run_id, text)
    first, second = status["pending"]
    assert first["correlation_id"] != second["correlation_id"]
    bridge.serve()
    await bridge.ready()
    async with reviewer(stack) as ann:
        listed = await ann.list(run_id=run_id)
        assert {a.correlation_id for a in listed.items} == {
            first["correlation_id"],
            second["correlation_id"],
        }
        await ann.decide(first["correlation_id"], "approve")
        # One decision of two: the run waits; nothing ran, the model was not asked again.
        await asyncio.sleep(3)
        assert await payments(mongo, bridge) == []
        assert len(llm[0].calls_for(text.split(":")[0])) == 1
        await ann.decide(second["correlation_id"], "reject", comment="not this one")
    end = await finished(mongo, bridge, run_id)
    assert end["kind"] == "completed"
    [paid] = await payments(mongo, bridge)
    assert paid["to_account"] == "acme"
    told = tool_messages(llm, text)
    assert told[0] == "sent 1200 to acme"
    assert "not this one" in told[1]
    assert len(llm[0].calls_for(text.split(":")[0])) == 2


async def test_a_decision_seen_by_three_processes_continues_the_run_once(
    stack: Stack, llm: LLM, bridge: Bridge, mongo: AsyncMongoClient[dict[str, Any]]
) -> None:
    run_id, text = new_run(
        llm, [Call("transfer", {"to_account": "acme", "amount": 1200})], Say("done: {tool_results}")
    )
    [pending] = bridge.start(run_id, text)["pending"]
    for _ in range(3):
        bridge.serve()  # each long-polls the same approval
    await bridge.ready()
    await asyncio.sleep(2)  # let them all park on it
    async with reviewer(stack) as ann:
        await ann.decide(pending["correlation_id"], "approve")
    end = await finished(mongo, bridge, run_id)
    assert end["final_output"] == "done: sent 1200 to acme"
    await asyncio.sleep(2)  # time for any duplicate to show
    assert len(await payments(mongo, bridge)) == 1
    assert len(llm[0].calls_for(text.split(":")[0])) == 2  # continued once
    # Delivered again (a `start` with the same id): the finished run, nothing re-run.
    again = bridge.start(run_id, text)
    assert again["status"] == "completed"
    assert len(llm[0].calls_for(text.split(":")[0])) == 2


@pytest.mark.parametrize("pause_at", ["before", "after"])
async def test_sigkill_between_decision_and_effect_pays_once(
    stack: Stack,
    llm: LLM,
    bridge: Bridge,
    mongo: AsyncMongoClient[dict[str, Any]],
    tmp_path: Path,
    pause_at: str,
) -> None:
    run_id, text = new_run(
        llm, [Call("transfer", {"to_account": "acme", "amount": 1200})], Say("done: {tool_results}")
    )
    [pending] = bridge.start(run_id, text)["pending"]
    paused = tmp_path / "paused"
    victim = bridge.serve(PAYABLES_PAUSE_AT=pause_at, PAYABLES_PAUSE_FILE=str(paused))
    async with reviewer(stack) as ann:
        await ann.decide(pending["correlation_id"], "approve")

    async def reached() -> bool:
        return paused.exists()

    await eventually(reached, timeout=WAIT, what=f"the tool to pause {pause_at} paying")
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=20)
    paid_at_kill = len(await payments(mongo, bridge))
    assert paid_at_kill == (1 if pause_at == "after" else 0)

    bridge.serve(PAYABLES_PAUSE_AT=pause_at, PAYABLES_PAUSE_FILE=str(paused))  # the restart
    end = await finished(mongo, bridge, run_id)
    assert end["final_output"] == "done: sent 1200 to acme"
    [paid] = await payments(mongo, bridge)
    assert paid["_id"] == pending["correlation_id"]
    assert len(llm[0].calls_for(text.split(":")[0])) == 2


async def test_four_eyes_the_bridges_account_cannot_approve_its_own_run(
    stack: Stack, llm: LLM, bridge: Bridge, mongo: AsyncMongoClient[dict[str, Any]]
) -> None:
    run_id, text = new_run(
        llm, [Call("transfer", {"to_account": "acme", "amount": 1200})], Say("done: {tool_results}")
    )
    [pending] = bridge.start(run_id, text)["pending"]
    bridge.serve()
    await bridge.ready()
    async with reviewer(stack, "pat") as pat:
        with pytest.raises(Forbidden):
            await pat.decide(pending["correlation_id"], "approve")
        assert (await pat.get(pending["correlation_id"])).status == "pending"
    await asyncio.sleep(2)
    assert await payments(mongo, bridge) == []
    async with reviewer(stack, "bob") as bob:
        await bob.decide(pending["correlation_id"], "approve")
    end = await finished(mongo, bridge, run_id)
    assert end["kind"] == "completed"
    assert len(await payments(mongo, bridge)) == 1
