"""LangGraph through hitl: the example's graph (langchain's create_agent with
HumanInTheLoopMiddleware, ChatOpenAI, MongoDBSaver) run by the bridge as its own
processes, against the real approval service, Kafka, FerretDB and the scripted
OpenAI-compatible server.

The money moved is the example's `ledger` collection (one entry per executed transfer,
keyed by thread and tool call), so "the tool ran" and "it ran once" are read from it.
"""

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pymongo
import pytest
from hitl_client import AsyncClient, Conflict, Forbidden

from tests.e2e.test_approval_support import PEOPLE, approval_stack, reviewers_json, token
from tests.support.fake_openai import Call, Say, ScriptedLLM
from tests.support.infra import Infra
from tests.support.stack import Stack
from tests.support.wait import eventually

ROOT = Path(__file__).parents[2]
EXAMPLE = ROOT / "examples" / "langgraph" / "payments.py"
# The bridge's account (role agent: the submitter four-eyes is about), and a person who
# runs a bridge with their own token and also reviews.
BRIDGE = ("payables-bridge", ("payables-bridge-token", ["agent"], []))
LENA = ("lena", ("lena-token", ["agent", "reviewer"], ["finance"]))
DONE = 120.0  # a deadline for a thread to get through its model calls on a busy machine


@pytest.fixture(scope="module")
def stack(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    people = {**PEOPLE, BRIDGE[0]: BRIDGE[1], LENA[0]: LENA[1]}
    env = {"APPROVAL_REVIEWERS": reviewers_json(people), "APPROVAL_WATCH_REFRESH_SECONDS": "1"}
    logs = tmp_path_factory.mktemp("langgraph-logs")
    with approval_stack(infra, logs, env=env, services=("approval",)) as s:
        yield s


class Payments:
    """The example, as separate processes on a database of its own."""

    def __init__(self, stack: Stack, infra: Infra, llm_url: str, logs: Path) -> None:
        self.db_name = f"lg_{uuid.uuid4().hex[:10]}"
        self.infra = infra
        self.logs = logs
        self.env = {
            **os.environ,
            "HITL_APPROVAL_URL": stack.url("approval"),
            "HITL_TOKEN": BRIDGE[1][0],
            "MONGODB_URL": infra.mongodb_url,
            "PAYMENTS_DB": self.db_name,
            "OPENAI_API_KEY": "test-key",
            "OPENAI_BASE_URL": llm_url + "/v1",
            "OPENAI_MODEL": "scripted",
            "PAYMENTS_BRIDGE_OWNER": "bridge-1",
        }
        self.servers: dict[str, subprocess.Popen[bytes]] = {}
        self.mongo: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(infra.mongodb_url)

    def start(self, thread: str, text: str, **env: str) -> list[str]:
        done = subprocess.run(
            [sys.executable, str(EXAMPLE), "start", thread, text],
            env={**self.env, **env},
            capture_output=True,
            timeout=DONE,
        )
        assert done.returncode == 0, done.stderr.decode()[-3000:]
        return done.stdout.decode().split()

    def serve(self, name: str = "bridge-1", **env: str) -> subprocess.Popen[bytes]:
        log = (self.logs / f"{self.db_name}-{name}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, str(EXAMPLE), "serve"],
            env={**self.env, "PAYMENTS_BRIDGE_OWNER": name, **env},
            stdout=log,
            stderr=log,
        )
        self.servers[name] = proc
        return proc

    def ledger(self, thread: str) -> list[dict[str, Any]]:
        found = self.mongo[self.db_name]["ledger"].find({"_id": {"$regex": f"^{thread}:"}})
        return list(found)

    def waiting(self) -> list[str]:
        return [d["_id"] for d in self.mongo[self.db_name]["langgraph_threads"].find()]

    def close(self) -> None:
        for proc in self.servers.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
        self.mongo.drop_database(self.db_name)
        self.mongo.close()


@contextlib.contextmanager
def payments(
    stack: Stack, infra: Infra, llm: tuple[ScriptedLLM, str], logs: Path
) -> Iterator[Payments]:
    p = Payments(stack, infra, llm[1], logs)
    try:
        yield p
    finally:
        p.close()
        print(f"bridge logs: {logs}")


@pytest.fixture(scope="module")
def bridge(
    stack: Stack,
    infra: Infra,
    llm: tuple[ScriptedLLM, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Payments]:
    """One `serve` process for the module, resuming every thread the tests start."""
    with payments(stack, infra, llm, tmp_path_factory.mktemp("bridge")) as p:
        p.serve()
        yield p


@contextlib.asynccontextmanager
async def as_(stack: Stack, who: str) -> AsyncIterator[AsyncClient]:
    token_of = {BRIDGE[0]: BRIDGE[1][0], LENA[0]: LENA[1][0]}
    async with AsyncClient(stack.url("approval"), token_of.get(who) or token(who)) as hitl:
        yield hitl


def script(llm: ScriptedLLM, *calls: Call) -> tuple[str, str]:
    """A thread id and a task whose first model turn asks for `calls`, then answers."""
    marker = f"LG-{uuid.uuid4().hex[:8]}"
    llm.script(marker, list(calls), Say("done. last: {last_message}"))
    return f"thread-{marker}", f"{marker}: pay the invoices"


async def finished(llm: ScriptedLLM, marker_of_thread: str, payments: Payments) -> str:
    """The model's final call (the tool results it saw), once the thread is done."""
    marker = marker_of_thread.removeprefix("thread-")

    async def done() -> str | None:
        calls = llm.calls_for(marker)
        if len(calls) < 2 or marker_of_thread in payments.waiting():
            return None
        return " ".join(str(m.get("content")) for m in calls[1]["messages"] if m["role"] == "tool")

    return await eventually(done, timeout=DONE, interval=0.2, what=f"{marker} to finish")


def pay(to: str, amount: float) -> Call:
    return Call("transfer", {"to_account": to, "amount": amount})


async def test_approve_runs_the_transfer_once_and_the_model_sees_it(
    bridge: Payments, stack: Stack, llm: tuple[ScriptedLLM, str]
) -> None:
    thread, task = script(llm[0], pay("acme", 1200))
    [cid] = bridge.start(thread, task)
    assert bridge.start(thread, task) == [cid]  # a re-run asks nothing new
    async with as_(stack, "ann") as ann:
        state = await ann.get(cid)
        assert state.status == "pending"
        assert state.request.tool == "transfer"
        assert state.request.arguments == {"to_account": "acme", "amount": 1200}
        assert state.request.run_id == thread
        assert state.request.requested_by == "payables-bridge"  # from the bridge's token
        assert (await ann.list(run_id=thread)).items[0].correlation_id == cid
        await ann.decide(cid, "approve")
    seen = await finished(llm[0], thread, bridge)
    assert "moved 1200.0 to acme" in seen
    assert [(e["to_account"], e["amount"]) for e in bridge.ledger(thread)] == [("acme", 1200)]


async def test_modify_runs_the_reviewers_arguments(
    bridge: Payments, stack: Stack, llm: tuple[ScriptedLLM, str]
) -> None:
    thread, task = script(llm[0], pay("acme", 1200))
    [cid] = bridge.start(thread, task)
    async with as_(stack, "ann") as ann:
        # The example's edit policy: the payee is locked, the amount may only go down.
        with pytest.raises(Exception, match="to_account"):
            await ann.decide(cid, "modify", arguments={"to_account": "mallory", "amount": 1200})
        await ann.decide(cid, "modify", arguments={"to_account": "acme", "amount": 1000})
    seen = await finished(llm[0], thread, bridge)
    assert "moved 1000.0 to acme" in seen
    assert "human reviewer replaced this tool call" in seen  # the middleware's notice
    assert [(e["to_account"], e["amount"]) for e in bridge.ledger(thread)] == [("acme", 1000)]


async def test_reject_runs_nothing_and_the_model_reads_the_reviewers_words(
    bridge: Payments, stack: Stack, llm: tuple[ScriptedLLM, str]
) -> None:
    thread, task = script(llm[0], pay("acme", 1200))
    [cid] = bridge.start(thread, task)
    async with as_(stack, "ann") as ann:
        await ann.decide(cid, "reject", comment="invoice 4711 is disputed, do not pay")
    seen = await finished(llm[0], thread, bridge)
    assert "invoice 4711 is disputed, do not pay" in seen
    assert bridge.ledger(thread) == []


async def test_expiry_fails_closed(
    bridge: Payments, stack: Stack, llm: tuple[ScriptedLLM, str]
) -> None:
    thread, task = script(llm[0], pay("acme", 1200))
    [cid] = bridge.start(thread, task, PAYMENTS_APPROVAL_TIMEOUT="2")
    seen = await finished(llm[0], thread, bridge)
    async with as_(stack, "ann") as ann:
        assert (await ann.get(cid)).status == "expired"
    assert "No reviewer decided in time" in seen
    assert bridge.ledger(thread) == []


@pytest.mark.parametrize("mode", ["per_call", "batched"])
async def test_two_calls_in_one_turn_are_two_approvals_both_needed(
    stack: Stack, infra: Infra, llm: tuple[ScriptedLLM, str], mode: str, tmp_path: Path
) -> None:
    # `start` and `serve` must build the same graph: a bridge of its own in this mode.
    with payments(stack, infra, llm, tmp_path) as own:
        own.serve(PAYMENTS_INTERRUPT_MODE=mode)
        thread, task = script(llm[0], pay("acme", 300), pay("globex", 400))
        cids = own.start(thread, task, PAYMENTS_INTERRUPT_MODE=mode)
        assert len(cids) == 2
        async with as_(stack, "ann") as ann:
            by_payee = {(await ann.get(c)).request.arguments["to_account"]: c for c in cids}
            await ann.decide(by_payee["acme"], "approve")
            # One of two decided: the thread must stay paused (a partial resume would
            # re-run the node). A bounded look, not a wait for something to happen.
            await asyncio.sleep(4)
            assert own.ledger(thread) == []
            assert thread in own.waiting()
            edit = {"to_account": "globex", "amount": 350}
            await ann.decide(by_payee["globex"], "modify", arguments=edit)
        seen = await finished(llm[0], thread, own)
        moved = sorted((e["to_account"], e["amount"]) for e in own.ledger(thread))
    assert "moved 300.0 to acme" in seen
    assert "moved 350.0 to globex" in seen
    assert moved == [("acme", 300), ("globex", 350)]


@pytest.mark.timeout(900)  # five interpreter starts with langchain on a shared, busy machine
@pytest.mark.parametrize("takeover", ["restarted", "survivor"])
async def test_a_decision_twice_and_a_kill_between_decision_and_record_move_money_once(
    stack: Stack,
    infra: Infra,
    llm: tuple[ScriptedLLM, str],
    tmp_path: Path,
    takeover: str,
) -> None:
    """Two bridges watch the thread; whichever resumes it dies once right after the
    transfer's effect, before LangGraph records the tool's result. `restarted`: leases
    too long for the survivor, the killed bridge comes back under its name and carries
    on; `survivor`: short leases, the killed one stays dead, the other takes over."""
    crash = tmp_path / "crashed"
    lease = "600" if takeover == "restarted" else "3"
    env = {"PAYMENTS_FAULT_CRASH_AFTER_EFFECT": str(crash), "PAYMENTS_LEASE_SECONDS": lease}
    with payments(stack, infra, llm, tmp_path) as own:
        thread, task = script(llm[0], pay("acme", 1200))
        [cid] = own.start(thread, task)
        for name in ("bridge-a", "bridge-b"):
            own.serve(name, **env)
        async with as_(stack, "ann") as ann:
            key = f"once-{cid}"  # a reviewer's Idempotency-Key names one decision of theirs
            await ann.decide(cid, "approve", idempotency_key=key)
            await ann.decide(cid, "approve", idempotency_key=key)  # replayed: same decision
            with pytest.raises(Conflict):
                await ann.decide(cid, "reject", comment="too late")

        async def killed() -> str | None:
            return next((n for n, p in own.servers.items() if p.poll() == -signal.SIGKILL), None)

        victim = await eventually(killed, timeout=DONE, what="a bridge killed mid-resume")
        assert crash.exists()
        assert len(own.ledger(thread)) == 1  # the effect happened before the kill
        if takeover == "restarted":
            own.serve(victim, **env)  # under its name: it takes its own claim over at once
        seen = await finished(llm[0], thread, own)
        moved = [(e["to_account"], e["amount"]) for e in own.ledger(thread)]
        logs = {n: (tmp_path / f"{own.db_name}-{n}.log").read_text() for n in own.servers}
    survivor = ({"bridge-a", "bridge-b"} - {victim}).pop()
    if takeover == "restarted":
        assert "left unfinished by this owner" in logs[victim]
        assert "taking over" not in logs[survivor]
    else:
        assert f"from {victim} (lease expired)" in logs[survivor]
    # The tool ran again on resume and found its effect recorded: money moved once.
    assert "already moved 1200.0 to acme" in seen
    assert moved == [("acme", 1200)]
    assert len(llm[0].calls_for(thread.removeprefix("thread-"))) == 2  # resumed once


async def test_four_eyes_the_submitter_cannot_approve_through_the_bridge(
    bridge: Payments, stack: Stack, llm: tuple[ScriptedLLM, str]
) -> None:
    thread, task = script(llm[0], pay("acme", 1200))
    # Lena runs this bridge with her own token: she is the submitter.
    [cid] = bridge.start(thread, task, HITL_TOKEN=LENA[1][0])
    async with as_(stack, "lena") as lena, as_(stack, "ann") as ann:
        assert (await lena.get(cid)).request.requested_by == "lena"
        with pytest.raises(Forbidden):
            await lena.decide(cid, "approve")
        with pytest.raises(Forbidden):
            await lena.decide(cid, "modify", arguments={"to_account": "acme", "amount": 1})
        assert (await ann.get(cid)).status == "pending"
        assert bridge.ledger(thread) == []
        await ann.decide(cid, "approve")
    seen = await finished(llm[0], thread, bridge)
    assert "moved 1200.0 to acme" in seen
    assert len(bridge.ledger(thread)) == 1
