"""The transfer approval policy lives in code; the model cannot talk its way past it."""

from typing import Any

import pytest
from hitl_agent.adapters.llm import OfflinePlanner
from hitl_contracts.edits import edit_problem
from hitl_demo.banking import TRANSFER_EDITS, deposit_args, money_totals, transfer_args
from hitl_demo.offline import banking_plan, files_plan
from pydantic import ValidationError

from tests.fakes import RecentLedger

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
    planner = OfflinePlanner(rules=[banking_plan, files_plan])
    turn = await planner.complete([{"role": "user", "content": "Transfer 500 to Alice"}], [])
    (call,) = turn.tool_calls
    assert call["function"]["name"] == "transfer"
    assert call["function"]["arguments"] == '{"to_account": "alice", "amount": 500.0}'


async def test_offline_planner_reports_tool_results() -> None:
    planner = OfflinePlanner()
    messages: list[dict[str, Any]] = [
        {"role": "user", "content": "Transfer 500 to Alice"},
        {"role": "assistant", "content": None, "tool_calls": []},
        {"role": "tool", "tool_call_id": "x", "content": "The human operator rejected this: no"},
    ]
    turn = await planner.complete(messages, [])
    assert turn.tool_calls == []
    assert turn.message["content"] == "[offline planner] The human operator rejected this: no"


async def test_split_transfers_add_up_to_the_run_threshold() -> None:
    totals = money_totals(RecentLedger({}), threshold=100, daily_limit=1000)
    small = TransferArgs.model_validate({"to_account": "alice", "amount": 99})
    assert await totals(small, 0) == []
    (reason,) = await totals(small, 99)
    assert "already moved 99.00 without approval" in reason
    assert "198.00, above the 100.00 approval threshold" in reason


async def test_an_accounts_daily_total_needs_approval_past_its_limit() -> None:
    totals = money_totals(
        RecentLedger({("checking", "out"): 95_000, ("checking", "in"): 0}),
        threshold=100,
        daily_limit=1000,
    )
    (reason,) = await totals(TransferArgs.model_validate({"to_account": "bob", "amount": 60}), 0)
    assert reason.startswith("checking has sent 950.00 in the last 24 hours")
    assert await totals(TransferArgs.model_validate({"to_account": "bob", "amount": 50}), 0) == []
    deposit = deposit_args(100).model_validate({"amount": 60})
    assert await totals(deposit, 0) == [], "deposits count against deposits"


def test_large_deposits_need_approval_too() -> None:
    args = deposit_args(100).model_validate({"amount": 999_999})
    assert args.approval_reason() == "deposit of 999999.00 exceeds the 100.00 approval threshold"
    assert deposit_args(100).model_validate({"amount": 100}).approval_reason() is None


@pytest.mark.parametrize("amount", [0.001, 0.005, 12.345])
def test_amounts_are_whole_cents(amount: float) -> None:
    with pytest.raises(ValidationError, match=r"whole cents|greater than or equal to 0\.01"):
        TransferArgs.model_validate({"to_account": "bob", "amount": amount})
    with pytest.raises(ValidationError):
        deposit_args(100).model_validate({"amount": amount})


def test_a_reviewer_may_lower_a_transfer_but_not_redirect_or_raise_it() -> None:
    asked = {"to_account": "alice", "amount": 500.0, "from_account": "checking"}
    assert edit_problem(asked, {**asked, "amount": 300}, TRANSFER_EDITS) is None
    assert "to_account" in str(edit_problem(asked, {**asked, "to_account": "bob"}, TRANSFER_EDITS))
    assert "from_account" in str(
        edit_problem(asked, {**asked, "from_account": "alice"}, TRANSFER_EDITS)
    )
    assert "raised" in str(edit_problem(asked, {**asked, "amount": 1_000_000}, TRANSFER_EDITS))
