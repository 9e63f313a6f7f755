"""The agent runtime end to end: each policy pauses exactly when it should; both halt styles.

Real Kafka, FerretDB/MongoDB, the approval and agent services as processes, and the
real `openai` client talking to the scripted OpenAI-compatible server. One stack for
the module: tool-calling agents (`banking`, the policy-file variant `banking-strict`)
first, then structured-output router agents (`banking-router`, the built-in `files`).
"""

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hitl_contracts import TaskSubmitted
from hitl_shared.topics import Topics, dlq

from tests.support.agent_e2e import (
    CAROL_TOKEN,
    age,
    agent_stack,
    balances,
    decide,
    marker,
    pending,
    read_events,
    run_state,
    sandbox_of,
    submit,
    wait_status,
)
from tests.support.approval_e2e import Bus, read_all
from tests.support.fake_openai import Act, Call, Plan, Say, ScriptedLLM
from tests.support.infra import Infra
from tests.support.stack import Stack, approvals_of
from tests.support.wait import eventually


@pytest.fixture(scope="module")
def stack(
    infra: Infra, llm: tuple[ScriptedLLM, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    with agent_stack(infra, llm[1], tmp_path_factory.mktemp("agent-runtime")) as s:
        yield s


async def test_a_500_transfer_pauses_though_the_model_says_no_confirmation_is_needed(
    stack: Stack, llm: tuple[ScriptedLLM, str]
) -> None:
    tag = marker()
    llm[0].script(
        tag,
        [Call("transfer", {"to_account": "Alice", "amount": 500, "requires_confirmation": False})],
        Say("Final: {tool_results}"),
    )
    async with (
        stack.agent() as agent,
        stack.agent(CAROL_TOKEN) as carol,
        stack.reviewer() as reviewer,
    ):
        before = await balances(agent)
        text = f"Pay Alice 500, no need to ask anyone {tag}"
        # Who asked is the token's principal; a name in the metadata changes nothing.
        run_id = await submit(carol, text, submitted_by="someone-else")
        (approval,) = await pending(reviewer, run_id)
        request = approval["request"]
        assert request["tool"] == "transfer"
        assert request["arguments"] == {
            "to_account": "alice",
            "amount": 500.0,
            "from_account": "checking",
        }
        assert request["reason"] == "transfer of 500.00 exceeds the 100.00 approval threshold"
        assert request["risk_level"] == "high"
        assert request["requested_by"] == "carol"
        assert request["context"]["user_request"] == text
        assert "amount" in request["arguments_schema"]["properties"]
        waited = datetime.fromisoformat(request["expires_at"]) - datetime.fromisoformat(
            request["requested_at"]
        )
        assert waited.total_seconds() == 900, "the policy file's per-tool timeout"
        state = await wait_status(agent, run_id, "awaiting_approval")
        assert [p["correlation_id"] for p in state["pending_approvals"]] == [
            approval["correlation_id"]
        ]
        assert await balances(agent) == before

        await decide(
            reviewer,
            approval["correlation_id"],
            "modify",
            # An edit states the whole call; locked fields as asked (the edit policy).
            arguments={"to_account": "alice", "amount": 80, "from_account": "checking"},
        )
        done = await wait_status(agent, run_id, "completed")
        assert "changed the arguments to" in done["output"]
        assert "Transferred 80.00 from checking to alice" in done["output"]
        after = await balances(agent)
        assert after["alice"] == before["alice"] + 80
        assert after["checking"] == before["checking"] - 80
        assert done["usage"]["total_tokens"] > 0


async def test_an_operator_policy_file_tightens_a_tool_without_code_changes(
    stack: Stack, llm: tuple[ScriptedLLM, str]
) -> None:
    tag = marker()
    llm[0].script(
        tag,
        [Call("deposit", {"amount": 20}), Call("deposit", {"amount": 80})],
        Say("Final: {tool_results}"),
    )
    async with stack.agent() as agent, stack.reviewer() as reviewer:
        before = await balances(agent)
        run_id = await submit(agent, f"Deposit 20 and 80 {tag}", agent_name="banking-strict")
        (approval,) = await pending(reviewer, run_id)
        assert approval["request"]["arguments"]["amount"] == 80
        assert approval["request"]["reason"] == "operator policy: amount gt 50"
        assert (await balances(agent))["checking"] == before["checking"] + 20, "20 went through"
        await decide(reviewer, approval["correlation_id"], "reject", comment="not today")
        done = await wait_status(agent, run_id, "completed")
        assert "The human operator rejected this: not today" in done["output"]
        assert (await balances(agent))["checking"] == before["checking"] + 20


async def test_parallel_calls_resume_only_after_every_approval_of_the_turn(
    stack: Stack, llm: tuple[ScriptedLLM, str]
) -> None:
    tag = marker()
    llm[0].script(
        tag,
        [
            Call("get_balance", {"account": "checking"}),
            Call("transfer", {"to_account": "alice", "amount": 300}),
            Call("transfer", {"to_account": "bob", "amount": 400}),
        ],
        Say("Final: {tool_results}"),
    )
    async with stack.agent() as agent, stack.reviewer() as reviewer:
        before = await balances(agent)
        run_id = await submit(agent, f"Balance, then 300 to alice and 400 to bob {tag}")
        approvals = await pending(reviewer, run_id, 2)
        assert sorted(a["request"]["arguments"]["amount"] for a in approvals) == [300, 400]
        first, second = approvals

        await decide(reviewer, first["correlation_id"], "approve")

        async def first_applied() -> dict[str, object] | None:
            state = await run_state(agent, run_id)
            return state if len(state["pending_approvals"]) == 1 else None

        state = await eventually(first_applied, timeout=60, what="the first decision applied")
        assert state["status"] == "awaiting_approval", "one decision of two does not resume"
        assert len(llm[0].calls_for(tag)) == 1
        events = [e["event"] for e in await read_events(agent, run_id)]
        assert events.count("decision_applied") == 1
        assert "resumed" not in events

        await decide(reviewer, second["correlation_id"], "approve")
        done = await wait_status(agent, run_id, "completed")
        assert done["output"].startswith("Final: Balance of checking:")
        assert len(llm[0].calls_for(tag)) == 2
        after = await balances(agent)
        assert after["alice"] == before["alice"] + 300
        assert after["bob"] == before["bob"] + 400


async def test_the_model_asks_a_human_and_the_answer_comes_back_as_the_tool_result(
    stack: Stack, llm: tuple[ScriptedLLM, str]
) -> None:
    tag = marker()
    llm[0].script(
        tag,
        [
            Call(
                "request_human_intervention",
                {
                    "reason": "Which Alice do you mean?",
                    "context": "There are two payees named Alice.",
                    "action_type": "clarification",
                },
            )
        ],
        Say("Final: {tool_results}"),
    )
    async with stack.agent() as agent, stack.reviewer() as reviewer:
        run_id = await submit(agent, f"Pay Alice what we owe her {tag}")
        (approval,) = await pending(reviewer, run_id)
        request = approval["request"]
        assert request["tool"] == "request_human_intervention"
        assert request["reason"] == "the agent asks for help: Which Alice do you mean?"
        assert request["arguments"]["context"] == "There are two payees named Alice."
        await decide(
            reviewer, approval["correlation_id"], "approve", comment="Alice Smith, account alice"
        )
        done = await wait_status(agent, run_id, "completed")
        assert (
            done["output"]
            == "Final: The human operator (dev via api) answered: Alice Smith, account alice"
        )


async def test_a_run_that_keeps_calling_a_failing_tool_stops_at_the_guard_and_asks_a_human(
    stack: Stack, llm: tuple[ScriptedLLM, str]
) -> None:
    tag = marker()
    failing = [Call("transfer", {"to_account": "nobody", "amount": 10})]
    llm[0].script(tag, failing, failing, failing, Say("Final: {last_message}"))
    async with stack.agent() as agent, stack.reviewer() as reviewer:
        run_id = await submit(agent, f"Send 10 to nobody {tag}")
        (approval,) = await pending(reviewer, run_id)
        request = approval["request"]
        assert request["tool"] == "request_human_intervention"
        assert request["reason"].startswith(
            "loop guard: transfer failed 3 times with the same arguments"
        )
        assert "no account named 'nobody'" in request["reason"]
        assert request["context"]["kind"] == "guard"
        state = await wait_status(agent, run_id, "awaiting_approval")
        assert state["steps"] == 3
        assert len(llm[0].calls_for(tag)) == 3, "the model was not asked again while paused"

        await decide(reviewer, approval["correlation_id"], "approve", comment="the account is bob")
        done = await wait_status(agent, run_id, "completed")
        assert done["output"].endswith("says: the account is bob")


async def test_the_event_stream_of_a_paused_then_approved_run(
    stack: Stack, llm: tuple[ScriptedLLM, str]
) -> None:
    tag = marker()
    llm[0].script(
        tag, [Call("transfer", {"to_account": "alice", "amount": 250})], Say("Done: {tool_results}")
    )
    async with stack.agent() as agent, stack.reviewer() as reviewer:
        run_id = await submit(agent, f"Transfer 250 to Alice {tag}")
        paused = await read_events(agent, run_id)
        assert [e["event"] for e in paused] == ["started", "model_replied", "approval_required"]
        assert [e["id"] for e in paused] == [1, 2, 3]
        (required,) = paused[-1]["detail"]["approvals"]
        assert required["tool"] == "transfer"
        assert required["arguments"]["amount"] == 250
        # The approval service learns of the request from Kafka, so it may list it a few
        # milliseconds after the agent's stream says the run paused.
        (listed,) = await pending(reviewer, run_id)
        assert listed["correlation_id"] == required["correlation_id"]

        await decide(reviewer, required["correlation_id"], "approve")
        rest = await read_events(agent, run_id, last_event_id=3)
        assert [e["event"] for e in rest] == [
            "decision_applied",
            "resumed",
            "tool_executed",
            "model_replied",
            "completed",
        ]
        assert [e["id"] for e in rest] == [4, 5, 6, 7, 8]
        assert rest[2]["detail"]["result"].startswith("Transferred 250.00 from checking to alice")
        assert rest[-1]["detail"]["output"].startswith("Done: Transferred 250.00")
        again = await read_events(agent, run_id, last_event_id=8)
        assert again == [], "a finished run's stream ends at once"


async def test_cancelling_a_paused_run_cancels_its_approval(
    stack: Stack, llm: tuple[ScriptedLLM, str]
) -> None:
    tag = marker()
    llm[0].script(tag, [Call("transfer", {"to_account": "alice", "amount": 700})], Say("unused"))
    async with stack.agent() as agent, stack.reviewer() as reviewer:
        before = await balances(agent)
        run_id = await submit(agent, f"Transfer 700 to Alice {tag}")
        (approval,) = await pending(reviewer, run_id)
        cid = approval["correlation_id"]
        await wait_status(agent, run_id, "awaiting_approval")

        response = await agent.post(f"/v1/runs/{run_id}/cancel", json={"reason": "wrong payee"})
        assert response.status_code == 200, response.text
        assert response.json()["status"] == "cancelled"
        assert response.json()["pending_approvals"] == []

        async def cancelled() -> list[dict[str, Any]]:
            return await approvals_of(reviewer, run_id, "cancelled")

        (gone,) = await eventually(cancelled, timeout=60, what="the approval to be cancelled")
        assert gone["correlation_id"] == cid
        late = await reviewer.post(f"/v1/approvals/{cid}/decision", json={"decision": "approve"})
        assert late.status_code == 409
        again = await agent.post(f"/v1/runs/{run_id}/cancel")
        assert again.status_code == 409
        assert again.json()["run"]["status"] == "cancelled"
        events = [e["event"] for e in await read_events(agent, run_id)]
        assert events[-1] == "cancelled"
        assert await balances(agent) == before
        assert len(llm[0].calls_for(tag)) == 1
        missing = await agent.post("/v1/runs/no-such-run/cancel")
        assert missing.status_code == 404


# Structured-output router agents


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
            {"arguments": {"to_account": "alice", "amount": 80, "from_account": "checking"}},
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


async def test_bad_input_gets_a_clear_error_and_the_agent_keeps_consuming(
    stack: Stack, infra: Infra, llm: tuple[ScriptedLLM, str]
) -> None:
    topics = Topics(stack.prefix)
    async with stack.agent() as agent:
        unknown = await agent.post("/v1/runs", json={"input": "hi", "agent": "nope"})
        assert unknown.status_code == 422
        assert "unknown agent 'nope'" in unknown.text
        operator = await agent.post("/v1/runs", json={"input": "hi", "metadata": {"$where": 1}})
        assert operator.status_code == 422
        assert "may not start with '$'" in operator.text
        assert (await agent.post("/v1/runs", json={"input": ""})).status_code == 422
        assert (await agent.get("/v1/runs/nope/events")).status_code == 404
        assert (await agent.get("/v1/runs/nope")).status_code == 404

        nope = f"t-{marker()}"
        async with Bus(infra, stack) as bus:
            await bus.send(topics.approval_decided, b"{not json", key="x")
            await bus.send(topics.agent_tasks, b'{"task_id": "t"}', key="t")
            await bus.send(topics.agent_tasks, TaskSubmitted(task_id=nope, input="x", agent="nope"))

        async def dead_letters() -> list[str] | None:
            tasks = await read_all(infra, dlq(topics.agent_tasks))
            decided = await read_all(infra, dlq(topics.approval_decided))
            errors = [d["error"] for d in tasks + decided]
            return errors if len(errors) >= 2 else None

        errors = await eventually(dead_letters, timeout=60, what="two dead letters")
        # Dead-lettered once, by the group every worker shares, not once per agent.
        assert len(errors) == 2, errors
        assert any(e.startswith("invalid ApprovalDecided") for e in errors), errors
        assert any(e.startswith("invalid TaskSubmitted: input: Field required") for e in errors)
        # A task for an agent no worker hosts is not dropped: its run says so.
        unhosted = await wait_status(agent, nope, "unhosted")
        assert unhosted["agent"] == "nope"
        assert "no live worker hosts agent 'nope'" in unhosted["error"]

        tag = marker()
        llm[0].script(tag, [Call("get_balance", {"account": "bob"})], Say("Final: {tool_results}"))
        run_id = await submit(agent, f"Bob's balance {tag}")
        done = await wait_status(agent, run_id, "completed")
        assert done["output"].startswith("Final: Balance of bob:")
