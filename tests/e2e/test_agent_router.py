"""Structured-output router agents end to end: a typed action plan, risky actions held.

`banking-router` (a policy-file variant of banking) and the built-in `files` agent
both halt this way; the scripted server answers their `response_format` requests.
"""

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_agent_support import (
    age,
    agent_stack,
    balances,
    decide,
    marker,
    pending,
    run_state,
    sandbox_of,
    submit,
    wait_status,
)
from tests.support.fake_openai import Act, Plan, Say, ScriptedLLM
from tests.support.infra import Infra
from tests.support.stack import Stack, approvals_of


@pytest.fixture(scope="module")
def stack(
    infra: Infra, llm: tuple[ScriptedLLM, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    with agent_stack(infra, llm[1], tmp_path_factory.mktemp("agent-router")) as s:
        yield s


def transfer_plan(amount: float, *, confidence: float = 0.95) -> Plan:
    return Plan(
        [Act("transfer", {"to_account": "alice", "amount": amount})],
        confidence=confidence,
        reasoning=f"The user wants {amount:g} sent to alice.",
    )


@pytest.mark.parametrize(
    ("decision", "body", "moved", "said"),
    [
        ("approve", {}, 500, "Transferred 500.00 from checking to alice"),
        (
            "modify",
            {"arguments": {"to_account": "alice", "amount": 80}},
            80,
            "Transferred 80.00 from checking to alice",
        ),
        (
            "reject",
            {"comment": "Alice was paid yesterday"},
            0,
            "The human operator rejected this: Alice was paid yesterday",
        ),
    ],
)
async def test_router_holds_the_risky_action_and_applies_the_decision(
    stack: Stack,
    llm: tuple[ScriptedLLM, str],
    decision: str,
    body: dict[str, object],
    moved: float,
    said: str,
) -> None:
    tag = marker()
    llm[0].script(tag, transfer_plan(500), Say("Final: {tool_results}"))
    async with stack.agent() as agent, stack.reviewer() as reviewer:
        before = await balances(agent)
        run_id = await submit(agent, f"Transfer 500 to Alice {tag}", agent_name="banking-router")
        (approval,) = await pending(reviewer, run_id)
        request = approval["request"]
        assert request["reason"] == "transfer of 500.00 exceeds the 100.00 approval threshold"
        assert request["context"]["agent_reasoning"] == "The user wants 500 sent to alice."
        assert request["context"]["confidence"] == 0.95
        state = await wait_status(agent, run_id, "awaiting_approval")
        assert state["style"] == "router"
        assert await balances(agent) == before

        await decide(reviewer, approval["correlation_id"], decision, **body)  # type: ignore[arg-type]
        done = await wait_status(agent, run_id, "completed")
        assert said in done["output"]
        assert done["output"].startswith("Final: Results of your action plan:")
        after = await balances(agent)
        assert after["alice"] == before["alice"] + moved
        assert after["checking"] == before["checking"] - moved
        plans = [r for r in llm[0].calls_for(tag) if r.get("response_format")]
        assert len(plans) == 2, "both model calls asked for structured output"
        assert plans[0]["response_format"]["json_schema"]["name"] == "action_plan"


async def test_low_confidence_holds_an_action_that_would_otherwise_run(
    stack: Stack, llm: tuple[ScriptedLLM, str]
) -> None:
    unsure, sure = marker(), marker()
    llm[0].script(unsure, transfer_plan(50, confidence=0.55), Say("Final: {tool_results}"))
    llm[0].script(sure, transfer_plan(50, confidence=0.9), Say("Final: {tool_results}"))
    async with stack.agent() as agent, stack.reviewer() as reviewer:
        before = await balances(agent)
        confident = await submit(agent, f"Send Alice 50 {sure}", agent_name="banking-router")
        done = await wait_status(agent, confident, "completed")
        assert "Transferred 50.00" in done["output"]
        assert await approvals_of(reviewer, confident) == []

        doubtful = await submit(
            agent, f"Maybe send Alice 50? {unsure}", agent_name="banking-router"
        )
        (approval,) = await pending(reviewer, doubtful)
        assert approval["request"]["reason"] == "model confidence 0.55 is below the 0.80 threshold"
        await decide(reviewer, approval["correlation_id"], "approve")
        await wait_status(agent, doubtful, "completed")
        assert (await balances(agent))["alice"] == before["alice"] + 100


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def old_and_new_logs(root: Path) -> tuple[list[str], list[str]]:
    """A per-test folder of the sandbox: logs older and newer than a week, and a text file."""
    root.mkdir()
    for name, days in [("app.log", 10), ("db.log", 8), ("today.log", 1), ("notes.txt", 30)]:
        (root / name).write_text(name)
        age(root / name, days)
    (root / "keep").mkdir()
    (root / "keep" / "deep.log").write_text("nested, not matched by *.log")
    age(root / "keep" / "deep.log", 30)
    return [f"{root.name}/app.log", f"{root.name}/db.log"], ["today.log", "notes.txt"]


async def test_deleting_old_logs_lists_the_files_and_approval_deletes_exactly_those(
    stack: Stack, llm: tuple[ScriptedLLM, str]
) -> None:
    tag = marker()
    folder = sandbox_of(stack) / tag.strip("[]")
    doomed, kept = old_and_new_logs(folder)
    llm[0].script(
        tag,
        Plan([Act("delete_files", {"pattern": f"{folder.name}/*.log", "older_than_days": 7})]),
        Say("Final: {tool_results}"),
    )
    async with stack.agent() as agent, stack.reviewer() as reviewer:
        run_id = await submit(
            agent, f"Delete all log files older than 7 days {tag}", agent_name="files"
        )
        (approval,) = await pending(reviewer, run_id)
        request = approval["request"]
        assert request["tool"] == "delete_files"
        assert request["reason"] == "delete_files always requires approval"
        assert request["context"]["files"] == doomed
        assert request["context"]["file_count"] == 2
        assert names(folder) == ["app.log", "db.log", "keep", *sorted(kept)]

        await decide(reviewer, approval["correlation_id"], "approve")
        done = await wait_status(agent, run_id, "completed")
        assert f"Deleted 2 files: {', '.join(doomed)}." in done["output"]
        assert names(folder) == ["keep", *sorted(kept)]
        assert (folder / "keep" / "deep.log").exists()


async def test_a_rejected_deletion_deletes_nothing_and_the_run_reports_it(
    stack: Stack, llm: tuple[ScriptedLLM, str]
) -> None:
    tag = marker()
    folder = sandbox_of(stack) / tag.strip("[]")
    old_and_new_logs(folder)
    before = names(folder)
    llm[0].script(
        tag,
        Plan([Act("delete_files", {"pattern": f"{folder.name}/*.log", "older_than_days": 7})]),
        Say("I did not delete anything: {tool_results}"),
    )
    async with stack.agent() as agent, stack.reviewer() as reviewer:
        run_id = await submit(
            agent, f"Delete all log files older than 7 days {tag}", agent_name="files"
        )
        (approval,) = await pending(reviewer, run_id)
        await decide(
            reviewer, approval["correlation_id"], "reject", comment="we need them for the audit"
        )
        done = await wait_status(agent, run_id, "completed")
        assert "The human operator rejected this: we need them for the audit" in done["output"]
        assert names(folder) == before
        state = await run_state(agent, run_id)
        assert state["pending_approvals"] == []
