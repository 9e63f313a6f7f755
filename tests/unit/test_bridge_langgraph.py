"""The LangGraph bridge's mapping, without a server: interrupts to approvals, outcomes to
`Command(resume=...)` values. The whole path runs in tests/e2e/test_bridge_langgraph.py."""

from datetime import UTC, datetime
from typing import Any

import pytest
from hitl_client import outcome_of
from hitl_client.bridges.langgraph import (
    UnsupportedInterrupt,
    asks_of,
    correlation_id,
    resume_map,
)
from hitl_client.outcomes import Outcome
from hitl_contracts import ApprovalDecided, Channel, Decision
from langgraph.types import Interrupt

ARGS = {"to_account": "acme", "amount": 1200}
PER_CALL_SCHEMA = {
    "$defs": {
        "EditedAction": {"properties": {"args": {"$ref": "#/$defs/transfer"}}},
        "transfer": {"type": "object", "properties": {"amount": {"type": "number"}}},
    },
    "discriminator": {"mapping": {"approve": "...", "edit": "...", "reject": "..."}},
}


def outcome(cid: str, decision: Decision, **fields: Any) -> Outcome:
    return outcome_of(
        ApprovalDecided(
            correlation_id=cid,
            run_id="t-1",
            decision=decision,
            reviewer=fields.pop("reviewer", "ann"),
            channel=Channel.API,
            decided_at=datetime(2026, 12, 3, tzinfo=UTC),
            **fields,
        )
    )


def per_call(iid: str, call: str) -> Interrupt:
    value = {"type": "tool_approval", "tool_call_id": call, "name": "transfer", "args": ARGS}
    return Interrupt(value={**value, "description": "pay"}, id=iid, response_schema=PER_CALL_SCHEMA)


def test_per_call_interrupts_are_one_approval_each_resumed_by_interrupt_id() -> None:
    asks = [
        a
        for i in (per_call("i1", "call_1"), per_call("i2", "call_2"))
        for a in asks_of("pay", "t-1", i)
    ]
    assert [(a.interrupt_id, a.tool_call_id, a.tool, a.arguments) for a in asks] == [
        ("i1", "call_1", "transfer", ARGS),
        ("i2", "call_2", "transfer", ARGS),
    ]
    assert asks[0].editable
    assert asks[0].arguments_schema == PER_CALL_SCHEMA["$defs"]["transfer"]
    first, second = (a.correlation_id for a in asks)
    edited = {"to_account": "acme", "amount": 1000}
    resume = resume_map(
        asks,
        {
            first: outcome(first, Decision.MODIFIED, arguments=edited),
            second: outcome(second, Decision.REJECTED, comment="disputed"),
        },
    )
    assert resume == {
        "i1": {"type": "edit", "edited_action": {"name": "transfer", "args": edited}},
        "i2": {"type": "reject", "message": "disputed"},
    }


def test_a_batched_interrupt_is_one_approval_per_action_and_one_list_of_decisions() -> None:
    value = {
        "action_requests": [
            {"name": "transfer", "args": ARGS, "description": "pay acme"},
            {"name": "refund", "args": {"order": "o-9"}},
        ],
        "review_configs": [
            {"action_name": "transfer", "allowed_decisions": ["approve", "edit", "reject"]},
            {"action_name": "refund", "allowed_decisions": ["approve", "reject"]},
        ],
    }
    asks = asks_of("pay", "t-1", Interrupt(value=value, id="b1"))
    assert [(a.tool, a.index, a.editable, a.batched) for a in asks] == [
        ("transfer", 0, True, True),
        ("refund", 1, False, True),
    ]
    ok, late = (a.correlation_id for a in asks)
    resume = resume_map(
        asks,
        {
            ok: outcome(ok, Decision.APPROVED, arguments=ARGS),
            late: outcome(late, Decision.EXPIRED, reviewer="system"),
        },
    )
    assert resume["b1"]["decisions"][0] == {"type": "approve"}
    # Expiry fails closed whatever the request said: a reject the model can read.
    assert resume["b1"]["decisions"][1]["type"] == "reject"
    assert "not run" in resume["b1"]["decisions"][1]["message"]


def test_a_hand_written_interrupt_and_a_rejection_without_comment() -> None:
    [ask] = asks_of(
        "pay", "t-1", Interrupt(value={"tool": "wipe", "arguments": {"path": "/"}}, id="h")
    )
    cid = ask.correlation_id
    assert resume_map([ask], {cid: outcome(cid, Decision.REJECTED)}) == {
        "h": {"type": "reject", "message": "rejected by ann"}
    }
    cancelled = resume_map([ask], {cid: outcome(cid, Decision.CANCELLED, reviewer="system")})
    assert cancelled["h"]["type"] == "reject"


def test_correlation_ids_are_stable_and_distinct() -> None:
    assert correlation_id("pay", "t-1", "i1", 0) == correlation_id("pay", "t-1", "i1", 0)
    ids = {
        correlation_id(*key)
        for key in [
            ("pay", "t-1", "i1", 0),
            ("pay", "t-1", "i1", 1),
            ("pay", "t-2", "i1", 0),
            ("ops", "t-1", "i1", 0),
        ]
    }
    assert len(ids) == 4


@pytest.mark.parametrize("value", ["approve?", {"question": "why"}, {"tool": 3, "arguments": {}}])
def test_an_interrupt_naming_no_tool_call_is_refused(value: object) -> None:
    with pytest.raises(UnsupportedInterrupt):
        asks_of("pay", "t-1", Interrupt(value=value, id="x"))
