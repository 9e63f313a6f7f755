"""Timeouts end to end: an unanswered approval expires and the agent tells the model; a
policy that escalates extends the deadline once, the notifier reaches the escalation
route, and then the approval expires.
"""

import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest

from tests.factories import approval_request
from tests.support.approval_e2e import Bus, approval_stack, now, outbox_drained, read_all
from tests.support.fake_openai import Call, Say, ScriptedLLM
from tests.support.infra import Infra
from tests.support.recorder import Recorder
from tests.support.stack import Stack, approvals_of
from tests.support.wait import eventually

POLICIES = {
    "rules": [{"match": {"agent": "ops-bot"}, "on_timeout": "escalate", "escalation_seconds": 1.5}]
}


@pytest.fixture(scope="module")
def stack(
    infra: Infra,
    llm: tuple[ScriptedLLM, str],
    webhooks: tuple[Recorder, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    env = {
        "OPENAI_API_KEY": "test-key",
        "OPENAI_BASE_URL": llm[1] + "/v1",
        "OPENAI_MODEL": "scripted",
        "NOTIFIER_WEBHOOK_URLS": webhooks[1] + "/hook",
        "NOTIFIER_REMINDER_FRACTION": "0",
        "AGENT_APPROVAL_TIMEOUT_SECONDS": "1.5",
        "APPROVAL_POLICIES": json.dumps(POLICIES),
    }
    logs = tmp_path_factory.mktemp("timeouts-logs")
    with approval_stack(infra, logs, env=env, services=("approval", "agent", "notifier")) as s:
        yield s


async def test_an_unanswered_approval_expires_and_the_agent_tells_the_model(
    infra: Infra, stack: Stack, llm: tuple[ScriptedLLM, str]
) -> None:
    tag = f"[{uuid.uuid4().hex[:8]}]"
    llm[0].script(
        tag,
        [Call("transfer", {"to_account": "alice", "amount": 400})],
        Say("Final: {tool_results}"),
    )
    async with stack.agent() as agent, stack.reviewer() as reviewer:
        before = (await agent.get("/v1/accounts")).json()
        response = await agent.post("/v1/runs", json={"input": f"Transfer 400 to Alice {tag}"})
        run_id = response.json()["run_id"]

        async def completed() -> dict[str, Any] | None:
            state: dict[str, Any] = (await agent.get(f"/v1/runs/{run_id}")).json()
            return state if state["status"] == "completed" else None

        done = await eventually(completed, timeout=60, what="the run to finish after expiry")
        assert "timed out without a human decision" in done["output"]
        assert (await agent.get("/v1/accounts")).json() == before, "nothing moved"

        (approval,) = await approvals_of(reviewer, run_id)
        assert approval["status"] == "expired"
        decision = approval["decision"]
        assert (decision["reviewer"], decision["channel"]) == ("system", "system")
        assert "no decision within the timeout" in decision["comment"]
        cid = approval["correlation_id"]
        late = await reviewer.post(f"/v1/approvals/{cid}/decision", json={"decision": "approve"})
        assert late.status_code == 409
        history = (await reviewer.get(f"/v1/approvals/{cid}/history")).json()
        assert [h["type"] for h in history if h["seq"] is not None] == ["requested", "expired"]

    log = (stack.logs / "approval.log").read_text()
    expiry = [json.loads(line) for line in log.splitlines() if "approval expired" in line]
    assert any(
        e["correlation_id"] == cid and "no decision within the timeout" in e["msg"] for e in expiry
    ), "the expiry is logged with its reason"
    await outbox_drained(stack)
    decided = await read_all(infra, f"{stack.prefix}approval.decided")
    assert [d["decision"] for d in decided if d["correlation_id"] == cid] == ["expired"]


async def test_a_policy_escalation_reaches_the_notifier_then_expires(
    infra: Infra, stack: Stack, webhooks: tuple[Recorder, str]
) -> None:
    # The request itself says on_timeout=reject; the policy for ops-bot escalates.
    event = approval_request(agent="ops-bot", expires_at=now() + timedelta(seconds=1))
    cid = event.correlation_id
    async with Bus(infra, stack) as bus:
        await bus.request(event)

    async def escalation_sent() -> list[Any]:
        return [
            hook.json()
            for hook in webhooks[0].matching("correlation_id", cid)
            if hook.json()["kind"] == "approval.escalated"
        ]

    (escalated,) = await eventually(escalation_sent, timeout=30, what="the escalation webhook")
    async with stack.reviewer() as reviewer:

        async def expired() -> dict[str, Any] | None:
            view: dict[str, Any] = (await reviewer.get(f"/v1/approvals/{cid}")).json()
            return view if view["status"] == "expired" else None

        final = await eventually(expired, timeout=30, what="expiry after the escalation")
        assert final["escalated"]
        assert final["policy"]["on_timeout"] == "escalate"
        assert escalated["expires_at"][:19] == final["expires_at"][:19]
        history = (await reviewer.get(f"/v1/approvals/{cid}/history")).json()

    stream = [h["type"] for h in history if h["seq"] is not None]
    assert stream == ["requested", "escalated", "expired"]
    notes = [h["detail"]["kind"] for h in history if h["seq"] is None and h["type"] == "notified"]
    assert "escalation" in notes, history
    kinds = [hook.json()["kind"] for hook in webhooks[0].matching("correlation_id", cid)]
    assert kinds.count("approval.requested") == 1
    assert kinds.count("approval.escalated") == 1

    async with httpx.AsyncClient(base_url=stack.url("approval")) as anyone:
        metrics = dict(
            line.rsplit(" ", 1)
            for line in (await anyone.get("/metrics")).text.splitlines()
            if line and not line.startswith("#")
        )
    assert float(metrics["hitl_approval_escalations_total"]) >= 1
    assert float(metrics["hitl_approval_expiries_total"]) >= 1
