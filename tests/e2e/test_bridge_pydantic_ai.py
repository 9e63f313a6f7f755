"""Pydantic AI (the real library) behind hitl's bridge, on the real stack.

The approval service runs as a real process on the real Kafka and store; the model is
the scripted OpenAI-compatible server; the bridge (tests/support/pydantic_ai_app.py) runs
as its own processes: `start` and `resume` commands, and a long-running `serve`.
"""

import asyncio
import contextlib
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
from hitl_client import AsyncClient, Forbidden, Invalid
from pymongo import AsyncMongoClient

from tests.support.approval_e2e import PEOPLE, approval_stack, reviewers_json, token
from tests.support.fake_openai import Call, Say, ScriptedLLM
from tests.support.infra import Infra
from tests.support.stack import Stack
from tests.support.wait import eventually

ROOT = Path(__file__).resolve().parents[2]
# Pat may both run agents and review: four-eyes must keep pat from approving pat's own.
TEAM = {**PEOPLE, "pat": ("pat-token", ["agent", "reviewer"], ["finance"])}
# Deadlines, not sleeps: on a busy 2-core machine one bridge process takes 20 s to import.
WAIT = 300.0
pytestmark = pytest.mark.timeout(1200)


@pytest.fixture(scope="module")
def stack(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    logs = tmp_path_factory.mktemp("bridge-pydantic-logs")
    env = {"APPROVAL_REVIEWERS": reviewers_json(TEAM)}
    with approval_stack(infra, logs, env=env, services=("approval",)) as s:
        yield s


@pytest.fixture(scope="module")
async def db(stack: Stack) -> AsyncIterator[Any]:
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stack.infra.mongodb_url)
    yield mongo[stack.database]
    await mongo.close()


class Bridge:
    """The bridge's processes for one test, with its own database name."""

    def __init__(self, stack: Stack, llm_url: str, logs: Path, who: str = "agent-service"):
        self.stack = stack
        self.logs = logs
        self.env = {
            **os.environ,
            "HITL_APPROVAL_URL": stack.url("approval"),
            "HITL_TOKEN": TEAM[who][0],
            "MONGODB_URL": stack.infra.mongodb_url,
            "BRIDGE_DATABASE": stack.database,
            "OPENAI_BASE_URL": llm_url + "/v1",
        }
        # `serve` keeps its name across restarts (a restarted instance takes over its own
        # unfinished steps at once); each command run is a process of its own.
        self.instance = f"bridge-{uuid.uuid4().hex[:6]}"
        self.servers: list[subprocess.Popen[bytes]] = []

    async def run(self, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.support.pydantic_ai_app",
            *args,
            cwd=ROOT,
            env={**self.env, "HITL_BRIDGE_INSTANCE": f"run-{uuid.uuid4().hex[:6]}", **(env or {})},
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), timeout=WAIT)
        except TimeoutError:
            proc.send_signal(signal.SIGUSR1)  # the app's faulthandler prints where it is
            await asyncio.sleep(2)
            proc.kill()
            _, err = await proc.communicate()
            raise AssertionError(f"bridge {args} hung:\n{err.decode()[-5000:]}") from None
        assert proc.returncode == 0, err.decode()[-3000:]
        turn: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
        return turn

    def serve(self, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        log = (self.logs / f"serve-{len(self.servers)}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.support.pydantic_ai_app", "serve"],
            cwd=ROOT,
            env={**self.env, "HITL_BRIDGE_INSTANCE": self.instance, **(env or {})},
            stdout=log,
            stderr=log,
        )
        self.servers.append(proc)
        return proc

    def close(self) -> None:
        for proc in self.servers:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


@pytest.fixture
def bridge(stack: Stack, llm: tuple[ScriptedLLM, str], tmp_path: Path) -> Iterator[Bridge]:
    b = Bridge(stack, llm[1], tmp_path)
    try:
        yield b
    finally:
        b.close()


@contextlib.asynccontextmanager
async def as_(stack: Stack, who: str) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(
        stack.url("approval"), token(who) if who in PEOPLE else TEAM[who][0]
    ) as c:
        yield c


def conversation(llm: ScriptedLLM, *turns: Any) -> tuple[str, str]:
    """A fresh conversation id and a prompt its script answers."""
    marker = f"[{uuid.uuid4().hex[:10]}]"
    llm.script(marker, *turns)
    return f"conv-{marker[1:-1]}", f"{marker} Pay Alice 500 from checking"


PAY = [Call("transfer", {"to_account": "alice", "amount": 500})]
DONE = Say("Done: {tool_results}")


async def ledger(db: Any, conv: str) -> list[dict[str, Any]]:
    return [d async for d in db.ledger.find({"conversation": conv})]


async def latest(db: Any, conv: str) -> dict[str, Any]:
    """The bridge's latest stored checkpoint of `conv`."""
    steps = [d async for d in db.pydantic_ai_steps.find({"conversation_id": conv})]
    return max(steps, key=lambda s: s["seq"])


async def finished(db: Any, conv: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        step = await latest(db, conv)
        return step if step["status"] == "completed" else None

    return await eventually(probe, timeout=WAIT, interval=0.5, what=f"{conv} to finish")


async def completed(bridge: Bridge, conv: str) -> dict[str, Any]:
    turn = await bridge.run("resume", conv, "60")
    assert turn["status"] == "completed", turn
    return turn


async def test_approve_runs_the_call_once_and_the_run_finishes(
    bridge: Bridge, llm: tuple[ScriptedLLM, str], db: Any, stack: Stack
) -> None:
    conv, prompt = conversation(llm[0], PAY, DONE)
    turn = await bridge.run("start", conv, prompt)
    assert turn["status"] == "awaiting_approval"
    assert len(turn["approvals"]) == 1
    assert await ledger(db, conv) == []  # nothing runs before a human says so
    async with as_(stack, "ann") as ann:
        state = await ann.get(turn["approvals"][0])
        assert state.status == "pending"
        request = state.request
        assert (request.tool, request.arguments) == (
            "transfer",
            {"to_account": "alice", "amount": 500},
        )
        assert request.run_id == conv
        assert request.agent == "payables"
        assert request.requested_by == "agent-service"  # from the bridge's token
        assert request.risk_level.value == "high"
        assert request.tool_call_id
        assert "Pay Alice 500" in str(request.context.user_request)
        await ann.decide(turn["approvals"][0], "approve")
    done = await completed(bridge, conv)
    assert done["output"] == "Done: Paid 500 to alice."
    assert [(p["to"], p["amount"]) for p in await ledger(db, conv)] == [("alice", 500)]
    # The history is durable: the stored checkpoint holds the whole conversation.
    steps = [d async for d in db.pydantic_ai_steps.find({"conversation_id": conv})]
    assert sorted(s["seq"] for s in steps) == [0, 1, 2]
    assert "Paid 500 to alice." in max(steps, key=lambda s: s["seq"])["messages"]


async def test_modify_runs_the_reviewers_arguments(
    bridge: Bridge, llm: tuple[ScriptedLLM, str], db: Any, stack: Stack
) -> None:
    conv, prompt = conversation(llm[0], PAY, DONE)
    turn = await bridge.run("start", conv, prompt)
    async with as_(stack, "ann") as ann:
        await ann.decide(
            turn["approvals"][0], "modify", arguments={"to_account": "alice", "amount": 300}
        )
    done = await completed(bridge, conv)
    assert [(p["to"], p["amount"]) for p in await ledger(db, conv)] == [("alice", 300)]
    assert done["output"] == "Done: Paid 300 to alice."


async def test_reject_runs_nothing_and_the_model_reads_the_reviewers_words(
    bridge: Bridge, llm: tuple[ScriptedLLM, str], db: Any, stack: Stack
) -> None:
    conv, prompt = conversation(llm[0], PAY, Say("Understood: {tool_results}"))
    turn = await bridge.run("start", conv, prompt)
    async with as_(stack, "ann") as ann:
        await ann.decide(turn["approvals"][0], "reject", comment="Alice was paid last week")
    done = await completed(bridge, conv)
    assert await ledger(db, conv) == []
    assert "Alice was paid last week" in done["output"]
    last = llm[0].calls_for(prompt.split()[0])[-1]["messages"][-1]
    assert last["role"] == "tool"
    assert "ann" in last["content"]
    assert "Alice was paid last week" in last["content"]


async def test_expiry_fails_closed(bridge: Bridge, llm: tuple[ScriptedLLM, str], db: Any) -> None:
    conv, prompt = conversation(llm[0], PAY, Say("Understood: {tool_results}"))
    turn = await bridge.run("start", conv, prompt, env={"BRIDGE_TIMEOUT": "2"})
    assert turn["status"] == "awaiting_approval"
    done = await completed(bridge, conv)  # waits out the 2 s; nobody decides
    assert await ledger(db, conv) == []
    assert "expired" in done["output"]
    assert "not run" in done["output"]


async def test_two_risky_calls_in_one_turn_need_both_decisions_and_each_runs_once(
    bridge: Bridge, llm: tuple[ScriptedLLM, str], db: Any, stack: Stack
) -> None:
    calls = [*PAY, Call("delete_file", {"path": "/srv/payroll.csv"})]
    conv, prompt = conversation(llm[0], calls, DONE)
    turn = await bridge.run("start", conv, prompt)
    assert turn["status"] == "awaiting_approval"
    assert len(set(turn["approvals"])) == 2  # one approval per call, ApprovalRequired too
    async with as_(stack, "ann") as ann:
        by_tool = {(await ann.get(a)).request.tool: a for a in turn["approvals"]}
        pay, delete = by_tool["transfer"], by_tool["delete_file"]
        await ann.decide(pay, "approve")
        half = await bridge.run("resume", conv, "2")
        assert half["status"] == "awaiting_approval"  # one decision is not enough
        assert await ledger(db, conv) == []
        await ann.decide(delete, "reject", comment="keep payroll")
    done = await completed(bridge, conv)
    again = await bridge.run("resume", conv)
    assert again == done
    assert len(await ledger(db, conv)) == 1
    assert [d async for d in db.deleted.find({"conversation": conv})] == []
    assert "Paid 500 to alice." in done["output"]
    assert "keep payroll" in done["output"]


async def test_a_decision_delivered_twice_continues_once(
    bridge: Bridge, llm: tuple[ScriptedLLM, str], db: Any, stack: Stack
) -> None:
    conv, prompt = conversation(llm[0], PAY, DONE)
    turn = await bridge.run("start", conv, prompt)
    async with as_(stack, "ann") as ann:
        await ann.decide(turn["approvals"][0], "approve")
    # Three processes act on the one decision at once: one serving, two resuming.
    bridge.serve()
    turns = await asyncio.gather(bridge.run("resume", conv, "60"), bridge.run("resume", conv, "60"))

    await finished(db, conv)
    assert len(await ledger(db, conv)) == 1
    steps = [d async for d in db.pydantic_ai_steps.find({"conversation_id": conv})]
    assert sorted(s["seq"] for s in steps) == [0, 1, 2]
    # The model was asked once to start and once to continue.
    assert len(llm[0].calls_for(prompt.split()[0])) == 2
    assert {t["status"] for t in turns} <= {"completed", "running"}


@pytest.mark.parametrize("point", ["before", "after"])
async def test_killed_between_decision_and_effect_the_effect_happens_once(
    bridge: Bridge, llm: tuple[ScriptedLLM, str], db: Any, stack: Stack, point: str
) -> None:
    conv, prompt = conversation(llm[0], PAY, DONE)
    turn = await bridge.run("start", conv, prompt)
    server = bridge.serve(env={"BRIDGE_HOLD": point})
    async with as_(stack, "ann") as ann:
        await ann.decide(turn["approvals"][0], "approve")

    async def held() -> Any:
        return await db.holds.find_one({"conversation": conv})

    await eventually(held, timeout=WAIT, what=f"the tool to stop {point} its effect")
    server.send_signal(signal.SIGKILL)
    server.wait(timeout=10)
    assert len(await ledger(db, conv)) == (0 if point == "before" else 1)
    bridge.serve()  # the same instance, restarted, without the hold

    done = await finished(db, conv)
    assert len(await ledger(db, conv)) == 1
    assert done["output"] in ("Done: Paid 500 to alice.", "Done: Already paid 500 to alice.")


async def test_four_eyes_the_bridges_own_identity_cannot_approve(
    stack: Stack, llm: tuple[ScriptedLLM, str], db: Any, tmp_path: Path
) -> None:
    bridge = Bridge(stack, llm[1], tmp_path, who="pat")
    conv, prompt = conversation(llm[0], PAY, DONE)
    turn = await bridge.run("start", conv, prompt)
    cid = turn["approvals"][0]
    async with as_(stack, "pat") as pat:
        assert (await pat.get(cid)).request.requested_by == "pat"
        with pytest.raises(Forbidden):
            await pat.decide(cid, "approve")
        with pytest.raises(Forbidden):
            await pat.decide(cid, "modify", arguments={"to_account": "alice", "amount": 1})
    assert (await bridge.run("resume", conv))["status"] == "awaiting_approval"
    assert await ledger(db, conv) == []
    async with as_(stack, "bob") as bob:
        await bob.decide(cid, "approve")
    await completed(bridge, conv)
    assert len(await ledger(db, conv)) == 1


def spawn(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=out)


async def test_the_example_pays_the_reviewers_amount_once(
    stack: Stack, llm: tuple[ScriptedLLM, str], db: Any, tmp_path: Path
) -> None:
    conv, prompt = conversation(
        llm[0], [Call("transfer", {"to_account": "acme", "amount": 1200})], DONE
    )
    env = {
        "HITL_APPROVAL_URL": stack.url("approval"),
        "HITL_TOKEN": token("agent-service"),
        "MONGODB_URL": stack.infra.mongodb_url,
        "MONGODB_DATABASE": stack.database,
        "OPENAI_BASE_URL": llm[1] + "/v1",
        "OPENAI_API_KEY": "test-key",
        "OPENAI_MODEL": "scripted",
    }
    script = [sys.executable, str(ROOT / "examples/pydantic_ai/payables.py")]
    proc = await asyncio.create_subprocess_exec(
        *script,
        "start",
        conv,
        prompt,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=WAIT)
    assert proc.returncode == 0, err.decode()[-3000:]
    approvals = json.loads(out)["approvals"]
    async with as_(stack, "ann") as ann:
        # The example's edit policy: the amount may go down, the payee is locked.
        with pytest.raises(Invalid):
            await ann.decide(approvals[0], "modify", arguments={"to_account": "evil", "amount": 1})
        await ann.decide(approvals[0], "modify", arguments={"to_account": "acme", "amount": 1000})
    server = spawn([*script, "serve"], {**os.environ, **env}, tmp_path / "example-serve.log")
    try:
        done = await finished(db, conv)
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert done["output"] == "Done: Paid 1000 to acme."
    paid = [p async for p in db.payments.find({"to": "acme"})]
    assert [p["amount"] for p in paid] == [1000]
