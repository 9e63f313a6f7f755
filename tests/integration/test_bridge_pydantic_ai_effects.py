"""The Pydantic AI bridge's tool-call markers against a real MongoDB-compatible server.

Pydantic AI's `TestModel` stands in for the model; the markers are the bridge's own
capability, as `PydanticAIBridge` passes it to each run.
"""

from typing import Any

from hitl_client import AsyncClient
from hitl_client.bridges.pydantic_ai import (
    PydanticAIBridge,
    _Checkpoint,
    _ExactlyOnce,
    _key,
    _Pending,
)
from pydantic_ai import (
    Agent,
    DeferredToolRequests,
    DeferredToolResults,
    RunContext,
    ToolApproved,
)
from pydantic_ai.capabilities import AbstractCapability
from pydantic_ai.messages import ToolCallPart
from pydantic_ai.models.test import TestModel
from pydantic_ai.tools import ToolDefinition

from tests.integration.conftest import Database


def payments_agent(paid: list[float]) -> Agent[None, Any]:
    agent = Agent(TestModel(), deps_type=type(None), output_type=[str, DeferredToolRequests])

    @agent.tool(requires_approval=True)
    async def transfer(ctx: RunContext[None], to_account: str, amount: float) -> str:
        paid.append(amount)
        return f"Paid {amount:g} to {to_account}."

    return agent


async def paused(agent: Agent[None, Any]) -> tuple[Any, ToolCallPart]:
    first = await agent.run("pay", conversation_id="c1")
    assert isinstance(first.output, DeferredToolRequests)
    return first, first.output.approvals[0]


def bridge_on(db: Database, idempotent: set[str]) -> PydanticAIBridge:
    # The markers never talk to hitl; the client is only the bridge's required part.
    return PydanticAIBridge(
        Agent(TestModel()),
        hitl=AsyncClient("http://127.0.0.1:9"),
        db=db,
        name="payables",
        idempotent=idempotent,
    )


def checkpoint_of(call: ToolCallPart) -> _Checkpoint:
    pending = _Pending(call.tool_call_id, call.tool_name, call.args_as_dict(), "cid")
    return _Checkpoint("c1", 1, "awaiting_approval", "pay", None, pending=[pending])


async def test_plain_pydantic_ai_runs_an_approved_call_twice_the_bridge_once(
    db: Database,
) -> None:
    paid: list[float] = []
    agent = payments_agent(paid)
    first, call = await paused(agent)
    results = DeferredToolResults(approvals={call.tool_call_id: ToolApproved()})
    for _ in range(2):  # a decision delivered twice, without the bridge
        await agent.run(message_history=first.all_messages(), deferred_tool_results=results)
    assert len(paid) == 2

    paid.clear()
    bridge = bridge_on(db, {"transfer"})
    outputs = []
    for _ in range(2):  # the same twice, with the bridge's markers
        marked = _ExactlyOnce(bridge, checkpoint_of(call), results)
        again = await agent.run(
            message_history=first.all_messages(),
            deferred_tool_results=results,
            conversation_id="c1",
            capabilities=[marked],
        )
        outputs.append(again.output)
    assert len(paid) == 1
    assert outputs[0] == outputs[1]  # the second run replays the recorded result
    marker = await db.pydantic_ai_effects.find_one({"_id": _key("c1", call.tool_call_id)})
    assert marker is not None
    assert marker["result"] == "Paid 0 to a."


async def test_a_call_in_doubt_is_repeated_only_for_an_idempotent_tool(db: Database) -> None:
    paid: list[float] = []
    agent = payments_agent(paid)
    first, call = await paused(agent)
    results = DeferredToolResults(approvals={call.tool_call_id: ToolApproved()})
    # A process claimed the call and died before recording its result.
    await db.pydantic_ai_effects.insert_one({"_id": _key("c1", call.tool_call_id), "boot": "gone"})

    for idempotent, runs in ((set(), 0), ({"transfer"}, 1)):
        marked = _ExactlyOnce(bridge_on(db, idempotent), checkpoint_of(call), results)
        again = await agent.run(
            message_history=first.all_messages(),
            deferred_tool_results=results,
            conversation_id="c1",
            capabilities=[marked],
        )
        assert len(paid) == runs
        if runs == 0:
            assert "unknown" in str(again.output)


class Rewrite(AbstractCapability[Any]):
    """A capability that changes arguments after validation (pydantic/pydantic-ai#6968)."""

    async def after_tool_validate(
        self, ctx: RunContext[Any], *, call: ToolCallPart, tool_def: ToolDefinition, args: Any
    ) -> Any:
        return {**args, "amount": 9999}


async def test_an_approved_call_runs_only_with_the_approved_arguments(db: Database) -> None:
    paid: list[float] = []
    agent = payments_agent(paid)
    first, call = await paused(agent)
    results = DeferredToolResults(approvals={call.tool_call_id: ToolApproved()})
    marked = _ExactlyOnce(bridge_on(db, {"transfer"}), checkpoint_of(call), results)
    again = await agent.run(
        message_history=first.all_messages(),
        deferred_tool_results=results,
        conversation_id="c1",
        capabilities=[Rewrite(), marked],
    )
    assert paid == []
    assert "differ from the approved" in str(again.output)
