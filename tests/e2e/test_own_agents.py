"""Your own agents: the example project, installed as a user would, on its own worker.

The stack's agent worker hosts the demo app (found by its entry point); a second
worker is `hitl-agent --app invoices.app:app` from a fresh virtualenv holding only
the runtime and the example. Real Kafka, FerretDB/MongoDB, the approval service and
the scripted OpenAI-compatible server. Each worker must get only its own agents'
tasks and decisions; a task for an agent no live worker hosts stays visible and
starts when its worker comes back.
"""

import json
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pymongo
import pytest
from hitl_contracts import TaskSubmitted
from hitl_shared.topics import Topics

from tests.support.agent_e2e import (
    agent_stack,
    decide,
    marker,
    pending,
    submit,
    wait_status,
)
from tests.support.approval_e2e import Bus
from tests.support.fake_openai import Call, Say, ScriptedLLM
from tests.support.infra import Infra
from tests.support.stack import Stack, approvals_of
from tests.support.wait import eventually

ROOT = Path(__file__).parents[2]
EXAMPLE = ROOT / "examples" / "invoices"
INTERNAL = re.compile(
    r"^\s*(from|import)\s+(hitl_agent|hitl_shared|hitl_demo|hitl_approval|hitl_notifier)\b",
    re.M,
)
WORKER = "invoices-worker"
# The operators' file of the invoices worker: a variant of the example's agent.
POLICIES = {
    "invoices-quick": {"extends": "invoices", "tools": {"pay_invoice": {"timeout_seconds": 2}}}
}


def uv() -> str:
    found = shutil.which("uv")
    if found is None:
        pytest.skip("uv is needed to install the example into a fresh virtualenv")
    return found


def fresh_venv(path: Path, *packages: Path) -> Path:
    subprocess.run([uv(), "venv", "-q", str(path), "--python", sys.executable], check=True)
    subprocess.run(
        [
            uv(),
            "pip",
            "install",
            "-q",
            "--python",
            str(path / "bin" / "python"),
            *map(str, packages),
        ],
        check=True,
    )
    return path


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The runtime and the example, installed as a user would."""
    return fresh_venv(tmp_path_factory.mktemp("venv") / "v", EXAMPLE, ROOT / "services" / "agent")


@pytest.fixture(scope="module")
def stack(
    infra: Infra, llm: tuple[ScriptedLLM, str], venv: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("own-agents")
    policies = workdir / "invoices-policies.json"
    policies.write_text(json.dumps(POLICIES))
    # Fast heartbeats, so a killed worker counts as gone within seconds.
    env = {"AGENT_WORKER_HEARTBEAT_SECONDS": "0.5", "AGENT_WORKER_STALE_SECONDS": "3"}
    with agent_stack(infra, llm[1], workdir, env=env) as s:
        # Where the second worker comes from (kept with the stack to restart it).
        s.env_extra["INVOICES_AGENT"] = str(venv / "bin" / "hitl-agent")
        s.env_extra["INVOICES_POLICIES"] = str(policies)
        start_invoices(s)
        yield s


def start_invoices(stack: Stack) -> None:
    stack.start_agent_worker(
        WORKER,
        apps=["invoices.app:app"],
        hitl_agent=[stack.env_extra["INVOICES_AGENT"]],
        env={"AGENT_POLICIES_FILE": stack.env_extra["INVOICES_POLICIES"]},
    )


def database(infra: Infra, stack: Stack) -> Any:
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(infra.mongodb_url)
    return client[stack.database]


async def executed_by(infra: Infra, stack: Stack, run_id: str, *tools: str) -> dict[str, list[str]]:
    """Which worker executed each tool of the run, by the agents that worker hosts,
    once each of `tools` has its record (an idempotent call's record is written beside
    the run's checkpoint, so it may land just after the run's status)."""

    async def probe() -> dict[str, list[str]] | None:
        found = _executed_by(infra, stack, run_id)
        return found if all(tool in found for tool in tools) else None

    return await eventually(probe, timeout=10.0, what=f"execution records of {tools}")


def _executed_by(infra: Infra, stack: Stack, run_id: str) -> dict[str, list[str]]:
    db = database(infra, stack)
    workers = {w["_id"]: ",".join(w["agents"]) for w in db["agent_workers"].find()}
    found: dict[str, list[str]] = {}
    for doc in db["tool_executions"].find({"_id": {"$regex": f"^{re.escape(run_id)}:"}}):
        found.setdefault(doc["tool"], []).append(workers[doc["owner"]])
    return found


def payments(infra: Infra, stack: Stack, run_id: str) -> list[dict[str, Any]]:
    db = database(infra, stack)
    return list(db["invoice_payments"].find({"_id": {"$regex": f"^{re.escape(run_id)}:"}}))


def pay(tag: str, vendor: str, amount: float, invoice: str = "INV-1") -> list[Any]:
    return [
        [Call("lookup_vendor", {"vendor": vendor})],
        [Call("pay_invoice", {"vendor": vendor, "invoice": invoice, "amount": amount})],
        Say("Final: {tool_results}"),
    ]


def test_the_example_uses_only_the_public_api() -> None:
    sources = sorted(EXAMPLE.rglob("*.py"))
    assert sources
    offenders = [str(p) for p in sources if INTERNAL.search(p.read_text())]
    assert offenders == []
    assert any("from hitl_sdk import" in p.read_text() for p in sources)


def test_the_sdk_alone_pulls_in_no_service_code(tmp_path: Path) -> None:
    venv = fresh_venv(tmp_path / "sdk-only", ROOT / "sdk")
    code = (
        "import sys, hitl_sdk; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'hitl_agent', 'hitl_shared', 'hitl_demo', 'faststream', 'aiokafka', 'pymongo', "
        "'fastapi', 'openai'}))"
    )
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-c", code], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"
    installed = subprocess.run(
        [uv(), "pip", "list", "--python", str(venv / "bin" / "python")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "hitl-agent" not in installed
    assert "hitl-shared" not in installed


async def test_a_first_payment_waits_for_approval_and_is_paid_exactly_once(
    stack: Stack, infra: Infra, llm: tuple[ScriptedLLM, str]
) -> None:
    tag = marker()
    llm[0].script(tag, *pay(tag, "acme", 250))
    async with stack.agent(name=WORKER) as agent, stack.reviewer() as reviewer:
        run_id = await submit(agent, f"Pay ACME's invoice INV-1 {tag}", agent_name="invoices")
        (approval,) = await pending(reviewer, run_id)
        request = approval["request"]
        assert (request["agent"], request["tool"]) == ("invoices", "pay_invoice")
        assert request["reason"] == "first payment to vendor 'acme'"
        assert request["context"]["vendor_name"] == "ACME Corp"  # the tool's preview
        assert payments(infra, stack, run_id) == []
        await decide(reviewer, approval["correlation_id"], "approve")
        again = await reviewer.post(
            f"/v1/approvals/{approval['correlation_id']}/decision", json={"decision": "approve"}
        )
        assert again.status_code == 409
        done = await wait_status(agent, run_id, "completed")
        assert "Paid 250.00 to acme for invoice INV-1." in done["output"]
    (paid,) = payments(infra, stack, run_id)
    assert (paid["vendor"], paid["amount"]) == ("acme", 250)
    # The task and the decision reached the worker that hosts the agent, and only it.
    assert await executed_by(infra, stack, run_id, "lookup_vendor", "pay_invoice") == {
        "lookup_vendor": ["invoices,invoices-quick"],
        "pay_invoice": ["invoices,invoices-quick"],
    }

    # Paid before and small: no human needed.
    tag = marker()
    llm[0].script(tag, *pay(tag, "acme", 40, "INV-2"))
    async with stack.agent(name=WORKER) as agent, stack.reviewer() as reviewer:
        run_id = await submit(agent, f"Pay ACME INV-2 {tag}", agent_name="invoices")
        done = await wait_status(agent, run_id, "completed")
        assert "Paid 40.00 to acme for invoice INV-2." in done["output"]
        assert await approvals_of(reviewer, run_id) == []


async def test_a_modified_payment_pays_the_edited_amount_once(
    stack: Stack, infra: Infra, llm: tuple[ScriptedLLM, str]
) -> None:
    tag = marker()
    llm[0].script(tag, *pay(tag, "globex", 5_000))
    # Submitted through the demo worker's API: any worker accepts a run for any
    # hosted agent; the invoices worker runs it.
    async with stack.agent() as demo, stack.reviewer() as reviewer:
        run_id = await submit(demo, f"Pay Globex 5000 {tag}", agent_name="invoices")
        (approval,) = await pending(reviewer, run_id)
        reason = approval["request"]["reason"]
        assert "payment of 5000.00 is above 1,000" in reason
        assert "first payment to vendor 'globex'" in reason
        cid = approval["correlation_id"]
        # The tool's edit policy (declared through the SDK) travels with the request:
        # a reviewer may lower the amount, not raise it or pay someone else.
        for widened in ({"amount": 6_000}, {"vendor": "acme"}):
            refused = await reviewer.post(
                f"/v1/approvals/{cid}/decision",
                json={
                    "decision": "modify",
                    "arguments": {"vendor": "globex", "invoice": "INV-1", "amount": 5_000}
                    | widened,
                },
            )
            assert refused.status_code == 422, refused.text
        edited = {"vendor": "globex", "invoice": "INV-1", "amount": 4_000}
        await decide(reviewer, cid, "modify", arguments=edited)
        done = await wait_status(demo, run_id, "completed")
        assert "changed the arguments" in done["output"]
        assert "Paid 4000.00 to globex" in done["output"]
    assert [p["amount"] for p in payments(infra, stack, run_id)] == [4_000]
    assert (await executed_by(infra, stack, run_id, "pay_invoice"))["pay_invoice"] == [
        "invoices,invoices-quick"
    ]


async def test_a_rejected_payment_pays_nothing(
    stack: Stack, infra: Infra, llm: tuple[ScriptedLLM, str]
) -> None:
    tag = marker()
    llm[0].script(tag, *pay(tag, "initech", 2_000))
    async with stack.agent(name=WORKER) as agent, stack.reviewer() as reviewer:
        run_id = await submit(agent, f"Pay Initech 2000 {tag}", agent_name="invoices")
        (approval,) = await pending(reviewer, run_id)
        await decide(reviewer, approval["correlation_id"], "reject", comment="not ours")
        done = await wait_status(agent, run_id, "completed")
        assert "The human operator rejected this: not ours" in done["output"]
    assert payments(infra, stack, run_id) == []


async def test_an_unanswered_payment_expires_and_pays_nothing(
    stack: Stack, infra: Infra, llm: tuple[ScriptedLLM, str]
) -> None:
    # `invoices-quick`: the operators' policy file gives the example's tool a 2 s timeout.
    tag = marker()
    llm[0].script(tag, *pay(tag, "initech", 3_000))
    async with stack.agent(name=WORKER) as agent, stack.reviewer() as reviewer:
        run_id = await submit(agent, f"Pay Initech 3000 {tag}", agent_name="invoices-quick")
        done = await wait_status(agent, run_id, "completed")
        assert "timed out without a human decision" in done["output"]
        (approval,) = await approvals_of(reviewer, run_id)
        assert approval["status"] == "expired"
    assert payments(infra, stack, run_id) == []


async def test_each_worker_keeps_its_runs_while_the_other_is_down(
    stack: Stack, infra: Infra, llm: tuple[ScriptedLLM, str]
) -> None:
    paused_tag, banking_tag, later_tag = marker(), marker(), marker()
    llm[0].script(paused_tag, *pay(paused_tag, "acme", 1_500, "INV-9"))
    llm[0].script(
        banking_tag,
        [Call("transfer", {"to_account": "bob", "amount": 500})],
        Say("Final: {tool_results}"),
    )
    llm[0].script(later_tag, *pay(later_tag, "acme", 10, "INV-10"))
    async with stack.agent() as demo, stack.reviewer() as reviewer:
        paused = await submit(demo, f"Pay ACME 1500 {paused_tag}", agent_name="invoices")
        (held,) = await pending(reviewer, paused)

        stack.stop(WORKER, kill=True)
        # The demo worker's runs carry on: pause, decision, resume.
        transfer = await submit(demo, f"Send 500 to Bob {banking_tag}")
        (approval,) = await pending(reviewer, transfer)
        await decide(reviewer, approval["correlation_id"], "approve")
        await wait_status(demo, transfer, "completed")
        assert (await executed_by(infra, stack, transfer, "transfer"))["transfer"] == [
            "banking,banking-router,banking-strict,files"
        ]

        # A decision for the stopped worker's run waits for it, untouched.
        await decide(reviewer, held["correlation_id"], "approve")

        # A new task for its agent is accepted and says nobody runs it yet.
        async def unhosted() -> httpx.Response | None:
            response = await demo.post(
                "/v1/runs", json={"input": f"Pay ACME 10 {later_tag}", "agent": "invoices"}
            )
            return response if response.json().get("status") == "unhosted" else None

        later = (
            await eventually(unhosted, timeout=30, what="invoices to count as unhosted")
        ).json()
        state = await wait_status(demo, later["run_id"], "unhosted")
        assert "no live worker hosts agent 'invoices'" in state["error"]
        assert (await wait_status(demo, paused, "awaiting_approval"))["pending_approvals"]
        metrics = (await demo.get("/metrics")).text
        assert 'hitl_agent_tasks_unhosted_total{agent="invoices"}' in metrics

        start_invoices(stack)
        done = await wait_status(demo, paused, "completed")
        assert "Paid 1500.00 to acme for invoice INV-9." in done["output"]
        later_done = await wait_status(demo, later["run_id"], "completed", timeout=90)
        assert "Paid 10.00 to acme for invoice INV-10." in later_done["output"]
    assert [p["amount"] for p in payments(infra, stack, paused)] == [1_500]
    assert [p["amount"] for p in payments(infra, stack, later["run_id"])] == [10]


async def test_a_kafka_task_naming_no_agent_runs_as_the_default_agent(
    stack: Stack, infra: Infra, llm: tuple[ScriptedLLM, str]
) -> None:
    # Producers older than per-agent routing left `agent` empty; AGENT_DEFAULT_AGENT
    # (banking here) takes it, on the worker hosting banking only.
    tag = marker()
    llm[0].script(tag, [Call("get_balance", {"account": "bob"})], Say("Final: {tool_results}"))
    task = TaskSubmitted(task_id=f"old-{tag.strip('[]')}", input=f"Bob's balance {tag}")
    assert task.agent == ""
    async with Bus(infra, stack) as bus:
        await bus.send(Topics(stack.prefix).agent_tasks, task, key=task.task_id)
    async with stack.agent() as agent:
        done = await wait_status(agent, task.task_id, "completed")
    assert done["agent"] == "banking"
    assert await executed_by(infra, stack, task.task_id, "get_balance") == {
        "get_balance": ["banking,banking-router,banking-strict,files"]
    }
