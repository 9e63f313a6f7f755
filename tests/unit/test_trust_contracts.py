"""The trust primitives every service shares: signatures, canonical JSON, edits, identities."""

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hitl_contracts import ApprovalDecided, ApprovalRequested, Channel, Decision, TaskSubmitted
from hitl_contracts.approval import EditPolicy
from hitl_contracts.edits import edit_problem
from hitl_contracts.identity import identity_key, same_identity
from hitl_contracts.signing import (
    BadSignature,
    DecisionSigner,
    DecisionVerifier,
    canonical_json,
    decision_payload,
)
from pydantic import ValidationError


def decided(**overrides: object) -> ApprovalDecided:
    fields: dict[str, object] = {
        "correlation_id": "c-1",
        "run_id": "r-1",
        "agent": "banking",
        "tool": "transfer",
        "tool_call_id": "call_1",
        "decision": Decision.MODIFIED,
        "arguments": {"to_account": "alice", "amount": 80.5},
        "reviewer": "ann",
        "channel": Channel.API,
        "decided_at": datetime(2026, 12, 2, 18, 0, tzinfo=UTC),
        **overrides,
    }
    return ApprovalDecided.model_validate(fields)


# RFC 8785 section 3.2.2.3 and appendix B number samples.
@pytest.mark.parametrize(
    ("number", "expected"),
    [
        (0.0, "0"),
        (-0.0, "0"),
        (1.0, "1"),
        (500.0, "500"),
        (1e21, "1e+21"),
        (1e20, "100000000000000000000"),
        (1e-7, "1e-7"),
        (0.000001, "0.000001"),
        (333333333.33333329, "333333333.3333333"),
        (5e-324, "5e-324"),
        (1.7976931348623157e308, "1.7976931348623157e+308"),
        (-1.5e-10, "-1.5e-10"),
    ],
)
def test_canonical_numbers_are_ecmascript_numbers(number: float, expected: str) -> None:
    assert canonical_json(number) == expected.encode()


def test_canonical_json_sorts_keys_and_drops_spaces() -> None:
    value = {"b": [1, 2.0, "x\n"], "a": None, "é": True}
    assert canonical_json(value) == '{"a":null,"b":[1,2,"x\\n"],"é":true}'.encode()


def test_a_signed_decision_survives_the_wire_and_verifies() -> None:
    signer = DecisionSigner.generate()
    signed = signer.sign(decided())
    assert signed.key_id == signer.key_id
    assert signed.signature
    received = ApprovalDecided.model_validate_json(signed.model_dump_json())
    DecisionVerifier.from_jwks({"keys": [signer.public_jwk()]}).verify(received)


@pytest.mark.parametrize(
    "change",
    [
        {"arguments": {"to_account": "bob", "amount": 80.5}},
        {"arguments": {"to_account": "alice", "amount": 4000}},
        {"decision": Decision.APPROVED},
        {"reviewer": "cfo"},
        {"run_id": "r-2"},
        {"tool_call_id": "call_2"},
        {"tool": "deposit"},
        {"agent": "files"},
        {"decided_at": datetime(2026, 12, 2, 18, 0, 1, tzinfo=UTC)},
    ],
)
def test_any_change_to_a_signed_field_breaks_the_signature(change: dict[str, object]) -> None:
    signer = DecisionSigner.generate()
    forged = signer.sign(decided()).model_copy(update=change)
    with pytest.raises(BadSignature, match="altered or forged"):
        DecisionVerifier([signer.key.public_key()]).verify(forged)


def test_unsigned_and_foreign_decisions_are_refused() -> None:
    ours, theirs = DecisionSigner.generate(), DecisionSigner.generate()
    verifier = DecisionVerifier([ours.key.public_key()])
    with pytest.raises(BadSignature, match="not signed"):
        verifier.verify(decided())
    with pytest.raises(BadSignature, match="unknown key"):
        verifier.verify(theirs.sign(decided()))


def test_the_payload_pins_time_to_utc_microseconds() -> None:
    in_paris = datetime(2026, 12, 2, 18, 0, tzinfo=UTC).astimezone(timezone(timedelta(hours=1)))
    assert in_paris.hour == 19
    assert b'"decided_at":"2026-12-02T18:00:00.000000Z"' in decision_payload(
        decided(decided_at=in_paris)
    )


def test_edits_may_narrow_but_not_widen() -> None:
    policy = EditPolicy(locked=("from_account", "to_account"), not_above=("amount",))
    original = {"from_account": "checking", "to_account": "alice", "amount": 500}
    assert edit_problem(original, {**original, "amount": 300}, policy) is None
    assert "from_account cannot be changed" in (
        edit_problem(original, {**original, "from_account": "alice"}, policy) or ""
    )
    assert "to_account cannot be changed" in (
        edit_problem(original, {**original, "to_account": "bob"}, policy) or ""
    )
    assert "lowered but not raised" in (
        edit_problem(original, {**original, "amount": 1_000_000}, policy) or ""
    )
    assert "must stay a number" in (
        edit_problem(original, {**original, "amount": "9"}, policy) or ""
    )
    assert "cannot be edited" in (
        edit_problem(original, original, EditPolicy(editable=False)) or ""
    )
    assert "memo was not in the request" in (
        edit_problem(original, {**original, "memo": "x"}, policy) or ""
    )
    assert edit_problem(original, {"anything": 1}, None) is None


def test_free_form_json_refuses_what_stores_cannot_take() -> None:
    now = datetime.now(UTC)
    base = {"task_id": "t", "input": "x"}
    for bad in ('{"a": NaN}', '{"a": Infinity}', '{"a": 99999999999999999999999}'):
        with pytest.raises(ValidationError, match="not plain JSON"):
            TaskSubmitted.model_validate_json(json.dumps(base)[:-1] + f', "metadata": {bad}}}')
    deep: dict[str, object] = {}
    cursor = deep
    for _ in range(40):
        cursor["x"] = {}
        cursor = cursor["x"]  # type: ignore[assignment]
    with pytest.raises(ValidationError, match="nested deeper"):
        TaskSubmitted(task_id="t", input="x", metadata=deep)
    request = {
        "correlation_id": "c",
        "run_id": "r",
        "agent": "a",
        "tool": "t",
        "arguments": {},
        "reason": "r",
        "context": {"user_request": "u"},
        "requested_at": now.isoformat(),
        "expires_at": (now + timedelta(minutes=5)).isoformat(),
    }
    with pytest.raises(ValidationError, match="less than or equal"):
        ApprovalRequested.model_validate({**request, "escalation_seconds": 1e15})
    with pytest.raises(ValidationError, match="366 days"):
        ApprovalRequested.model_validate(
            {**request, "expires_at": (now + timedelta(days=4000)).isoformat()}
        )
    with pytest.raises(ValidationError, match="not plain JSON"):
        ApprovalRequested.model_validate(
            {**request, "context": {"user_request": "u", "x": float("nan")}}
        )


def test_identities_compare_without_case_or_unicode_form() -> None:
    assert identity_key("  Carol ") == "carol"
    assert same_identity("carol", "CAROL")
    assert same_identity("carol", "\uff23\uff21\uff32\uff2f\uff2c")  # full-width
    assert not same_identity("", "")
    assert not same_identity("carol", "carl")
