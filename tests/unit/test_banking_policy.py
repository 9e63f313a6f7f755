"""The transfer approval policy lives in code; the model cannot talk its way past it."""

import pytest
from hitl_agent.adapters.llm import OfflinePlanner
from hitl_demo.banking import transfer_args

TransferArgs = transfer_args(100.0)


def test_transfer_above_threshold_needs_approval() -> None:
    args = TransferArgs.model_validate({"to_account": "Alice", "amount": 500})
    assert args.approval_reason() == "transfer of 500.00 exceeds the 100.00 approval threshold"
    assert args.to_account == "alice"


def test_model_claiming_no_confirmation_needed_is_ignored() -> None:
    args = TransferArgs.model_validate(
        {"to_account": "alice", "amount": 500, "requires_confirmation": False}
    )
    assert args.approval_reason() is not None


@pytest.mark.parametrize("amount", [50, 100])
def test_transfer_at_or_below_threshold_runs(amount: float) -> None:
    assert (
        TransferArgs.model_validate({"to_account": "bob", "amount": amount}).approval_reason()
        is None
    )


async def test_offline_planner_turns_requests_into_tool_calls() -> None:
    planner = OfflinePlanner()
    turn = await planner.complete([{"role": "user", "content": "Transfer 500 to Alice"}], [])
    (call,) = turn.tool_calls
    assert call["function"]["name"] == "transfer"
    assert call["function"]["arguments"] == '{"to_account": "alice", "amount": 500.0}'


async def test_offline_planner_reports_tool_results() -> None:
    planner = OfflinePlanner()
    messages = [
        {"role": "user", "content": "Transfer 500 to Alice"},
        {"role": "assistant", "content": None, "tool_calls": []},
        {"role": "tool", "tool_call_id": "x", "content": "The human operator rejected this: no"},
    ]
    turn = await planner.complete(messages, [])
    assert turn.tool_calls == []
    assert turn.message["content"] == "[offline planner] The human operator rejected this: no"
