"""The `hitl` command line against the running stack: real HTTP, real Kafka and store.

Click's CliRunner runs the commands in-process; the services are real processes.
"""

import json
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
from click.testing import CliRunner, Result
from hitl_cli.main import cli

from tests.support.fake_openai import Call, Say, ScriptedLLM
from tests.support.stack import DEV_AGENT_TOKEN, DEV_TOKEN, Stack

T = TypeVar("T")


def hitl(stack: Stack, *args: str, token: str = DEV_TOKEN) -> Result:
    env = {
        "HITL_APPROVAL_URL": stack.url("approval"),
        "HITL_AGENT_URL": stack.url("agent"),
        "HITL_TOKEN": token,
    }
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def until(probe: Callable[[], T | None], *, timeout: float = 60, what: str) -> T:
    """Bounded retry for these synchronous tests (no fixed sleeps)."""
    deadline = time.monotonic() + timeout
    while True:
        if (result := probe()) is not None:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def scripted_transfer(llm: ScriptedLLM, amount: float) -> str:
    tag = f"[{uuid.uuid4().hex[:8]}]"
    llm.script(
        tag,
        [Call("transfer", {"to_account": "alice", "amount": amount})],
        Say("Final: {tool_results}"),
    )
    return f"Transfer {amount:g} to Alice {tag}"


def pending_of(stack: Stack, run_id: str) -> str:
    def probe() -> str | None:
        listed = hitl(stack, "approvals", "--run-id", run_id, "--json")
        assert listed.exit_code == 0, listed.output
        items = json.loads(listed.stdout)["items"]
        return str(items[0]["correlation_id"]) if items else None

    return until(probe, what=f"the pending approval of run {run_id}")


def balances(stack: Stack) -> dict[str, float]:
    result: dict[str, float] = httpx.get(
        stack.url("agent") + "/v1/accounts",
        headers={"Authorization": f"Bearer {DEV_AGENT_TOKEN}"},
        timeout=30,
    ).json()
    return result


def test_submit_follow_prints_the_pause_the_decision_and_the_result(
    stack: Stack, llm: tuple[ScriptedLLM, str]
) -> None:
    text = scripted_transfer(llm[0], 500)
    decided: list[str] = []

    def reviewer_elsewhere() -> None:
        # Another reviewer (here the REST API) decides while the CLI follows the run.
        with httpx.Client(
            base_url=stack.url("approval"), headers={"Authorization": f"Bearer {DEV_TOKEN}"}
        ) as api:

            def probe() -> str | None:
                page = api.get("/v1/approvals", params={"status": "pending", "agent": "banking"})
                mine = [
                    i
                    for i in page.json()["items"]
                    if i["request"]["context"]["user_request"] == text
                ]
                return mine[0]["correlation_id"] if mine else None

            cid = until(probe, what="the approval the CLI is waiting on")
            answer = api.post(f"/v1/approvals/{cid}/decision", json={"decision": "approve"})
            assert answer.status_code == 200, answer.text
            decided.append(cid)

    helper = threading.Thread(target=reviewer_elsewhere, daemon=True)
    helper.start()
    result = hitl(stack, "submit", text, "--follow", "--timeout", "120")
    helper.join(timeout=60)

    assert result.exit_code == 0, result.output
    out = result.stdout
    cid = decided[0]
    assert "paused for approval" in out
    assert "needs approval: transfer(to_account=alice, amount=500" in out
    assert f"hitl approve {cid}" in out
    assert "transfer approved by dev" in out
    assert "transfer ok: Transferred 500.00 from checking to alice" in out
    assert out.index("paused for approval") < out.index("approved by dev") < out.index("completed")


def test_list_show_modify_and_a_second_decision_exits_3(
    stack: Stack, llm: tuple[ScriptedLLM, str]
) -> None:
    before = balances(stack)
    text = scripted_transfer(llm[0], 300)
    submitted = hitl(stack, "submit", text)
    assert submitted.exit_code == 0, submitted.output
    run_id = submitted.stdout.strip()
    cid = pending_of(stack, run_id)

    listed = hitl(stack, "approvals")
    assert listed.exit_code == 0
    header, *rows = listed.stdout.splitlines()
    assert header.split() == ["ID", "TOOL", "AGENT", "RISK", "STATUS", "AGE", "LEFT", "ARGUMENTS"]
    row = next(r for r in rows if r.startswith(cid))
    assert row.split()[1:5] == ["transfer", "banking", "high", "pending"]

    shown = hitl(stack, "show", cid)
    assert shown.exit_code == 0
    assert f"request    {text}" in shown.stdout
    assert "amount = 300" in shown.stdout
    assert "requested" in shown.stdout.split("history", 1)[1]

    modified = hitl(stack, "modify", cid, "--set", "amount=80", "--comment", "cap at 80")
    assert modified.exit_code == 0, modified.output
    assert "modified: transfer (to_account=alice, amount=80" in modified.stdout

    again = hitl(stack, "approve", cid)
    assert again.exit_code == 3
    assert "already modified by dev via api" in again.stderr
    as_json = hitl(stack, "reject", cid, "--comment", "too late", "--json")
    assert as_json.exit_code == 3
    assert json.loads(as_json.stdout)["approval"]["status"] == "modified"

    def moved() -> dict[str, float] | None:
        now = balances(stack)
        return now if now["alice"] == before["alice"] + 80 else None

    after = until(moved, what="the edited transfer of 80")
    assert after["checking"] == before["checking"] - 80
    run = hitl(stack, "run", run_id, "--json")
    assert json.loads(run.stdout)["status"] == "completed"
    history = json.loads(hitl(stack, "show", cid, "--json").stdout)["history"]
    assert [h["type"] for h in history if h["seq"] is not None] == ["requested", "modified"]


def test_usage_errors_exit_2_and_change_nothing(stack: Stack, llm: tuple[ScriptedLLM, str]) -> None:
    run_id = hitl(stack, "submit", scripted_transfer(llm[0], 200)).stdout.strip()
    cid = pending_of(stack, run_id)

    attempts: list[tuple[str, ...]] = [
        ("reject", cid),  # a rejection needs --comment
        ("modify", cid),  # nothing to change
        ("modify", cid, "--set", "amount=lots"),  # the schema says amount is a number
        ("modify", cid, "--set", "no-equals-sign"),
        ("approvals", "--status", "maybe"),
    ]
    for args in attempts:
        result = hitl(stack, *args)
        assert result.exit_code == 2, (args, result.output)
    assert "amount must be a number" in hitl(stack, "modify", cid, "--set", "amount=lots").stderr
    state: dict[str, Any] = json.loads(hitl(stack, "show", cid, "--json").stdout)
    assert state["approval"]["status"] == "pending"

    rejected = hitl(stack, "reject", cid, "--comment", "Alice is not a payee")
    assert rejected.exit_code == 0, rejected.output
    assert rejected.stdout.startswith("rejected: transfer")


def test_errors_exit_1_with_a_message_to_act_on(stack: Stack) -> None:
    missing = hitl(stack, "show", "no-such-approval")
    assert missing.exit_code == 1
    assert "404" in missing.stderr
    assert "no-such-approval" in missing.stderr

    impostor = hitl(stack, "approvals", token="not-a-token")
    assert impostor.exit_code == 1
    assert "HITL_TOKEN" in impostor.stderr

    unreachable = CliRunner().invoke(cli, ["--approval-url", "http://127.0.0.1:9", "approvals"])
    assert unreachable.exit_code == 1
    assert "cannot reach the approval service at http://127.0.0.1:9" in unreachable.stderr


def test_status_says_whether_the_services_are_ready(stack: Stack) -> None:
    ready = hitl(stack, "status", "--json")
    assert ready.exit_code == 0, ready.output
    report = json.loads(ready.stdout)
    assert report["ready"] is True
    assert {e["service"]: e["ready"] for e in report["endpoints"]} == {
        "approval": True,
        "agent": True,
    }
    down = CliRunner().invoke(
        cli,
        ["--agent-url", "http://127.0.0.1:9", "--approval-url", stack.url("approval"), "status"],
    )
    assert down.exit_code == 1
    assert "agent     NOT READY" in down.stdout
