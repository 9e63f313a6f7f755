"""Approval policies are code: declared on tools, only ever tightened by operators."""

import json
from pathlib import Path

import pytest
from hitl_agent.adapters.policy_file import PolicyFileError, load_policies
from hitl_agent.domain.guards import record_outcome, tripped
from hitl_agent.domain.plan import InvalidPlan, parse_plan, plan_schema
from hitl_agent.domain.policy import (
    AgentPolicy,
    Condition,
    ToolOverride,
    ToolPolicy,
    approval_reasons,
)
from hitl_agent.domain.run import Budget, Run, Style
from hitl_agent.service_layer.agents import Builtin, UnknownAgent, build_catalog
from hitl_contracts import RiskLevel
from hitl_demo.banking import transfer_args

from tests.support.agent_harness import World

Transfer = transfer_args(100.0)


def reasons(policy: ToolPolicy, amount: float, **kw: float) -> list[str]:
    args = Transfer.model_validate(
        {"to_account": "alice", "amount": amount, "requires_confirmation": False}
    )
    return approval_reasons("transfer", policy, args, **kw)


def test_predicate_fires_above_the_threshold_whatever_the_model_claims() -> None:
    assert reasons(ToolPolicy(), 500) == [
        "transfer of 500.00 exceeds the 100.00 approval threshold"
    ]
    assert reasons(ToolPolicy(), 100) == []


def test_static_requirement_and_operator_conditions_add_reasons() -> None:
    policy = ToolPolicy().tightened(
        ToolOverride(
            requires_approval=True,
            require_approval_when=(
                Condition(field="to_account", op="in", value=["alice", "mallory"]),
            ),
        )
    )
    assert reasons(policy, 50) == [
        "transfer always requires approval",
        "operator policy: to_account in ['alice', 'mallory']",
    ]


def test_confidence_below_the_threshold_needs_a_human() -> None:
    assert reasons(ToolPolicy(), 50, confidence=0.5, threshold=0.8) == [
        "model confidence 0.50 is below the 0.80 threshold"
    ]
    assert reasons(ToolPolicy(), 50, confidence=0.9, threshold=0.8) == []


def test_an_override_cannot_loosen() -> None:
    strict = ToolPolicy(requires_approval=True, risk_level=RiskLevel.HIGH, timeout_seconds=60)
    merged = strict.tightened(ToolOverride(requires_approval=False, risk_level=RiskLevel.LOW))
    assert merged.requires_approval is True
    assert merged.risk_level is RiskLevel.HIGH
    assert merged.timeout_seconds == 60
    assert (
        ToolPolicy().tightened(ToolOverride(risk_level=RiskLevel.CRITICAL)).risk_level
        is RiskLevel.CRITICAL
    )


def test_a_condition_on_a_value_of_the_wrong_type_asks_rather_than_guesses() -> None:
    assert Condition(field="amount", op="gt", value=50).holds({"amount": "lots"})
    assert not Condition(field="amount", op="gt", value=50).holds({"other": 1})


def test_policy_file_defines_variants_and_tightens_tools(tmp_path: Path) -> None:
    path = tmp_path / "policies.json"
    path.write_text(
        json.dumps(
            {
                "test": {"tools": {"note": {"requires_approval": True, "timeout_seconds": 90}}},
                "test-router": {"extends": "test", "style": "router", "confidence_threshold": 0.9},
            }
        )
    )
    catalog = build_catalog(
        [Builtin("test", "p", World().registry, AgentPolicy())], load_policies(str(path))
    )
    note = catalog["test"].registry.get("note")
    assert note is not None
    assert note.policy.requires_approval
    assert note.policy.timeout_seconds == 90
    assert catalog["test-router"].policy.style is Style.ROUTER
    assert catalog["test-router"].policy.confidence_threshold == 0.9
    assert catalog["test"].registry.get("request_human_intervention") is not None


def test_policy_file_mistakes_fail_fast_with_the_reason(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"test": {"tools": {"note": {"requires_aproval": True}}}}))
    with pytest.raises(PolicyFileError, match="requires_aproval"):
        load_policies(str(path))
    builtins = [Builtin("test", "p", World().registry, AgentPolicy())]
    with pytest.raises(ValueError, match="unknown tools \\['nope'\\]"):
        build_catalog(builtins, {"test": load_config({"tools": {"nope": {}}})})
    with pytest.raises(UnknownAgent, match="extends no hosted agent"):
        build_catalog(builtins, {"other": load_config({})})


def load_config(raw: dict[str, object]):  # type: ignore[no-untyped-def]
    from hitl_agent.adapters.policy_file import AgentConfig

    return AgentConfig.model_validate(raw)


def test_guard_counts_identical_failures_and_a_success_clears_them() -> None:
    run = Run(run_id="r", task_id="r", agent="a", input="x", budget=Budget(max_repeated_failures=2))
    record_outcome(run, "t", {"a": 1, "b": 2}, ok=False, error="boom")
    assert tripped(run) is None
    record_outcome(run, "t", {"b": 2, "a": 1}, ok=False, error="boom again")
    assert tripped(run) == 't failed 2 times with the same arguments {"a": 1, "b": 2}: boom again'
    record_outcome(run, "t", {"a": 1, "b": 2}, ok=True)
    assert tripped(run) is None
    run.extend_limits()
    assert run.ceilings.steps == run.steps + run.budget.max_steps


def test_action_plans_parse_or_fail_clearly() -> None:
    parsed = parse_plan(
        '{"reasoning": "r", "confidence": 0.6, "actions": [{"tool": "t", "arguments": {"x": 1}}]}'
    )
    assert parsed.confidence_of(parsed.actions[0]) == 0.6
    with pytest.raises(InvalidPlan):
        parse_plan('{"actions": []}')
    schema = plan_schema({"t": {"type": "object"}})
    (variant,) = schema["properties"]["actions"]["items"]["anyOf"]
    assert variant["properties"]["tool"] == {"type": "string", "const": "t"}
