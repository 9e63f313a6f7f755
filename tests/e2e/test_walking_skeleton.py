"""The whole approval loop through real processes, Kafka and the store."""

import uuid
from typing import Any

import httpx
import pytest

from tests.support.fake_openai import Call, Say, ScriptedLLM
from tests.support.recorder import Recorder
from tests.support.stack import Stack, approvals_of
from tests.support.wait import eventually


def marker() -> str:
    return f"[{uuid.uuid4().hex[:8]}]"


async def balances(agent: httpx.AsyncClient) -> dict[str, float]:
    response = await agent.get("/v1/accounts")
    response.raise_for_status()
    result: dict[str, float] = response.json()
    return result


async def submit(agent: httpx.AsyncClient, text: str) -> str:
    response = await agent.post("/v1/runs", json={"input": text, "agent": "banking"})
    assert response.status_code == 202, response.text
    run_id: str = response.json()["run_id"]
    return run_id


async def run_state(agent: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    response = await agent.get(f"/v1/runs/{run_id}")
    response.raise_for_status()
    state: dict[str, Any] = response.json()
    return state


async def wait_status(agent: httpx.AsyncClient, run_id: str, status: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        state = await run_state(agent, run_id)
        assert state["status"] not in {"failed"} or status == "failed", state
        return state if state["status"] == status else None

    return await eventually(probe, timeout=60, what=f"run {run_id} to be {status}")


async def one_pending(reviewer: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    async def probe() -> list[Any]:
        return await approvals_of(reviewer, run_id, "pending")

    (approval,) = await eventually(probe, timeout=60, what="the pending approval")
    return dict(approval)


def script_transfer(llm: ScriptedLLM, tag: str, amount: float, to: str) -> None:
    llm.script(
        tag, [Call("transfer", {"to_account": to, "amount": amount})], Say("Final: {tool_results}")
    )


async def test_large_transfer_pauses_then_approval_executes_it_once(
    stack: Stack, llm: tuple[ScriptedLLM, str], webhooks: tuple[Recorder, str]
) -> None:
    tag = marker()
    script_transfer(llm[0], tag, 500, "alice")
    async with stack.agent() as agent, stack.reviewer() as reviewer:
        before = await balances(agent)
        run_id = await submit(agent, f"Transfer 500 to Alice {tag}")

        approval = await one_pending(reviewer, run_id)
        assert approval["request"]["tool"] == "transfer"
        assert approval["request"]["arguments"]["amount"] == 500
        state = await wait_status(agent, run_id, "awaiting_approval")
        assert [p["correlation_id"] for p in state["pending_approvals"]] == [
            approval["correlation_id"]
        ]
        assert await balances(agent) == before, "nothing moves before the decision"

        cid = approval["correlation_id"]
        # The reviewer is told first: the notifier skips requests that are already decided.
        hooks = await eventually(
            lambda: _async(
                [
                    h
                    for h in webhooks[0].matching("correlation_id", cid)
                    if h.json()["kind"] == "approval.requested"
                ]
            ),
            what="the webhook notification",
        )
        assert hooks[0].json()["tool"] == "transfer"
        decided = await reviewer.post(
            f"/v1/approvals/{cid}/decision", json={"decision": "approve", "comment": "fine"}
        )
        assert decided.status_code == 200, decided.text
        assert decided.json()["status"] == "approved"

        done = await wait_status(agent, run_id, "completed")
        assert "Transferred 500.00 from checking to alice" in done["output"]
        after = await balances(agent)
        assert after["checking"] == before["checking"] - 500
        assert after["alice"] == before["alice"] + 500

        again = await reviewer.post(f"/v1/approvals/{cid}/decision", json={"decision": "approve"})
        assert again.status_code == 409
        assert again.json()["approval"]["status"] == "approved"
        history = (await reviewer.get(f"/v1/approvals/{cid}/history")).json()
        # The approval's own stream; the notifier's delivery notes are interleaved by time.
        stream = [h for h in history if h["seq"] is not None]
        assert [h["type"] for h in stream] == ["requested", "approved"]
        assert stream[1]["actor"] == "dev"
        assert await balances(agent) == after, "the second decision executed nothing"
        # The model was asked exactly twice: the plan, then the final answer after resume.
        assert len(llm[0].calls_for(tag)) == 2
        requested = [
            h
            for h in webhooks[0].matching("correlation_id", cid)
            if h.json()["kind"] == "approval.requested"
        ]
        assert len(requested) == 1, "one notification per request"


async def test_rejection_moves_nothing_and_the_model_hears_the_comment(
    stack: Stack, llm: tuple[ScriptedLLM, str]
) -> None:
    tag = marker()
    script_transfer(llm[0], tag, 500, "alice")
    async with stack.agent() as agent, stack.reviewer() as reviewer:
        before = await balances(agent)
        run_id = await submit(agent, f"Transfer 500 to Alice {tag}")
        cid = (await one_pending(reviewer, run_id))["correlation_id"]
        response = await reviewer.post(
            f"/v1/approvals/{cid}/decision",
            json={"decision": "reject", "comment": "Alice is not a known payee"},
        )
        assert response.status_code == 200, response.text
        done = await wait_status(agent, run_id, "completed")
        assert "The human operator rejected this: Alice is not a known payee" in done["output"]
        assert await balances(agent) == before


async def test_small_transfer_needs_no_approval(stack: Stack, llm: tuple[ScriptedLLM, str]) -> None:
    tag = marker()
    script_transfer(llm[0], tag, 50, "bob")
    async with stack.agent() as agent, stack.reviewer() as reviewer:
        before = await balances(agent)
        run_id = await submit(agent, f"Transfer 50 to Bob {tag}")
        done = await wait_status(agent, run_id, "completed")
        assert "Transferred 50.00 from checking to bob" in done["output"]
        assert await approvals_of(reviewer, run_id) == []
        after = await balances(agent)
        assert after["bob"] == before["bob"] + 50
        assert after["checking"] == before["checking"] - 50


async def test_decision_resumes_a_run_after_the_agent_restarted(
    stack: Stack, llm: tuple[ScriptedLLM, str]
) -> None:
    tag = marker()
    script_transfer(llm[0], tag, 300, "alice")
    async with stack.agent() as agent, stack.reviewer() as reviewer:
        before = await balances(agent)
        run_id = await submit(agent, f"Transfer 300 to Alice {tag}")
        cid = (await one_pending(reviewer, run_id))["correlation_id"]

    stack.stop("agent", kill=True)
    stack.start("agent")

    async with stack.agent() as agent, stack.reviewer() as reviewer:
        response = await reviewer.post(
            f"/v1/approvals/{cid}/decision", json={"decision": "approve"}
        )
        assert response.status_code == 200, response.text
        await wait_status(agent, run_id, "completed")
        after = await balances(agent)
        assert after["alice"] == before["alice"] + 300


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"decision": "maybe"}, "decision"),
        ({"decision": "modify"}, "modify needs the edited arguments"),
        ({"decision": "approve", "extra": 1}, "extra"),
    ],
)
async def test_bad_decision_bodies_get_422_with_the_reason(
    stack: Stack, body: dict[str, Any], fragment: str, llm: tuple[ScriptedLLM, str]
) -> None:
    tag = marker()
    script_transfer(llm[0], tag, 200, "alice")
    async with stack.agent() as agent, stack.reviewer() as reviewer:
        run_id = await submit(agent, f"Transfer 200 to Alice {tag}")
        cid = (await one_pending(reviewer, run_id))["correlation_id"]
        response = await reviewer.post(f"/v1/approvals/{cid}/decision", json=body)
        assert response.status_code == 422
        assert fragment in response.text
        still = await reviewer.get(f"/v1/approvals/{cid}")
        assert still.json()["status"] == "pending"
        await reviewer.post(f"/v1/approvals/{cid}/decision", json={"decision": "reject"})


async def test_decisions_need_a_reviewer_token(stack: Stack) -> None:
    async with httpx.AsyncClient(base_url=stack.url("approval")) as anonymous:
        response = await anonymous.post("/v1/approvals/x/decision", json={"decision": "approve"})
        assert response.status_code == 401
        assert "bearer token" in response.json()["detail"]
    async with stack.reviewer("wrong-token") as impostor:
        assert (await impostor.get("/v1/approvals")).status_code == 401
    async with stack.reviewer() as reviewer:
        missing = await reviewer.post("/v1/approvals/nope/decision", json={"decision": "approve"})
        assert missing.status_code == 404


async def _async(value: Any) -> Any:
    return value
