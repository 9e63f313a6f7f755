"""The OpenAI Agents SDK bridge's decisions, without a server: what each verified outcome
means for the call, and a restored state that does not match its approvals fails closed.

The SDK's own ScriptedModel plays the model; nothing here touches MongoDB or HTTP (the
whole path runs in tests/e2e/test_bridge_openai_agents.py).
"""

from datetime import UTC, datetime
from typing import Any

import pytest
from agents import Agent, RunConfig, Runner, RunState, function_tool
from agents.testing import ScriptedModel, assistant_message, function_call
from hitl_client import AsyncClient, outcome_of
from hitl_client.bridges.openai_agents import AgentsBridge, PendingCall
from hitl_contracts import ApprovalDecided, Channel, Decision
from pymongo import AsyncMongoClient

ARGS = {"to_account": "acme", "amount": 1200}
# No traces leave a unit test.
QUIET = RunConfig(tracing_disabled=True)


@function_tool(needs_approval=True)
async def transfer(to_account: str, amount: float) -> str:
    """Pay."""
    raise AssertionError("a unit test never pays")


def bridge(model: ScriptedModel | None = None) -> AgentsBridge:
    # Neither client connects until used.
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        "mongodb://127.0.0.1:9/", connect=False
    )
    db = client["unit"]
    agent = Agent(name="payables", tools=[transfer], model=model or ScriptedModel())
    return AgentsBridge(agent, hitl=AsyncClient("http://127.0.0.1:9", "t"), db=db, run_config=QUIET)


def call(b: AgentsBridge, call_id: str = "call-1") -> PendingCall:
    return PendingCall(b.correlation_id("run-1", call_id), call_id, "transfer", dict(ARGS))


def decided(c: PendingCall, decision: Decision, **fields: Any) -> ApprovalDecided:
    values: dict[str, Any] = {
        "correlation_id": c.correlation_id,
        "run_id": "run-1",
        "decision": decision,
        "reviewer": "ann",
        "channel": Channel.API,
        "decided_at": datetime.now(UTC),
        "tool": "transfer",
        "tool_call_id": c.call_id,
        **fields,
    }
    return ApprovalDecided.model_validate(values)


def test_correlation_ids_are_deterministic_per_bridge_run_and_call() -> None:
    b = bridge()
    assert b.correlation_id("run-1", "call-1") == b.correlation_id("run-1", "call-1")
    assert b.correlation_id("run-1", "call-1") != b.correlation_id("run-2", "call-1")
    assert b.correlation_id("run-1", "call-1") == "openai-agents:payables:run-1:call-1"


def test_approve_allows_the_call_as_asked() -> None:
    b = bridge()
    c = call(b)
    ruling = b._rule("run-1", c, outcome_of(decided(c, Decision.APPROVED, arguments=ARGS)))
    assert ruling.allow
    assert ruling.arguments is None


def test_modify_allows_the_call_with_the_reviewers_arguments() -> None:
    b = bridge()
    c = call(b)
    edited = {"to_account": "acme", "amount": 1000}
    ruling = b._rule("run-1", c, outcome_of(decided(c, Decision.MODIFIED, arguments=edited)))
    assert ruling.allow
    assert ruling.arguments == edited


@pytest.mark.parametrize(
    ("decision", "words"),
    [
        (Decision.REJECTED, "Rejected by reviewer ann: paid by cheque"),
        (Decision.EXPIRED, "No reviewer decided in time"),
        (Decision.CANCELLED, "cancelled"),
    ],
)
def test_reject_expiry_and_cancel_refuse_the_call(decision: Decision, words: str) -> None:
    b = bridge()
    c = call(b)
    ruling = b._rule("run-1", c, outcome_of(decided(c, decision, comment="paid by cheque")))
    assert not ruling.allow
    assert words in ruling.message


@pytest.mark.parametrize(
    "other",
    [{"run_id": "run-2"}, {"tool_call_id": "call-9"}, {"tool": "delete_all"}],
)
def test_a_decision_for_another_call_is_refused(other: dict[str, Any]) -> None:
    b = bridge()
    c = call(b)
    approved = decided(c, Decision.APPROVED, arguments=ARGS, **other)
    assert not b._rule("run-1", c, outcome_of(approved)).allow


async def test_restored_interruptions_that_do_not_match_the_approvals_fail_closed() -> None:
    model = ScriptedModel([[function_call("transfer", ARGS, call_id="call-1")]])
    b = bridge(model)
    result = await Runner.run(b.agent, "pay acme", run_config=QUIET)
    state = await RunState.from_string(b.agent, result.to_state().to_string())
    problem = b._apply(state, [call(b, "call-2")], {})
    assert "do not match" in problem


async def test_a_rejection_reaches_the_model_in_the_reviewers_words() -> None:
    model = ScriptedModel(
        [[function_call("transfer", ARGS, call_id="call-1")], [assistant_message("ok")]]
    )
    b = bridge(model)
    result = await Runner.run(b.agent, "pay acme", run_config=QUIET)
    state = await RunState.from_string(b.agent, result.to_state().to_string())
    c = call(b)
    ruling = b._rule("run-1", c, outcome_of(decided(c, Decision.REJECTED, comment="not today")))
    assert b._apply(state, [c], {"call-1": ruling}) == ""
    await Runner.run(b.agent, state, run_config=QUIET)
    last = model.last_call
    assert last is not None
    assert "Rejected by reviewer ann: not today" in str(last.input)
