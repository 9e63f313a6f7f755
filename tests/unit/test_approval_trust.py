"""Issue 10 in the approval domain: identities compare normalised, edits never widen,
decisions name the call they decide and are signed, a broken stored approval is refused."""

from datetime import UTC, datetime
from typing import Any

import pytest
from hitl_approval.domain.model import (
    AlreadyVoted,
    Approval,
    Entry,
    EntryType,
    InvalidDecision,
    NotAllowed,
    Verb,
)
from hitl_approval.domain.policy import Policy
from hitl_contracts import ApprovalDecided, ApprovalRequested, Channel
from hitl_contracts.signing import DecisionSigner, DecisionVerifier

from tests.factories import approval_request

T0 = datetime(2026, 1, 1, 12, tzinfo=UTC)
TRANSFER = {"from_account": "checking", "to_account": "alice", "amount": 500}
SCHEMA = {
    "type": "object",
    "properties": {
        "from_account": {"type": "string"},
        "to_account": {"type": "string"},
        "amount": {"type": "number", "exclusiveMinimum": 0, "multipleOf": 0.01},
    },
    "required": ["from_account", "to_account", "amount"],
}
POLICY = {"locked": ["from_account", "to_account"], "not_above": ["amount"]}


def request(**overrides: Any) -> ApprovalRequested:
    fields: dict[str, Any] = {
        "correlation_id": "c1",
        "run_id": "r1",
        "tool_call_id": "call-1",
        "arguments": TRANSFER,
        "arguments_schema": SCHEMA,
        "edit_policy": POLICY,
        "reason": "over threshold",
        "requested_by": "Sam",
    }
    return approval_request(
        at=T0, user_request="Transfer 500 from checking to alice", **{**fields, **overrides}
    )


def attempt(approval: Approval, verb: Verb, reviewer: str = "ann", **kw: object) -> Entry:
    return approval.decide(verb, reviewer=reviewer, channel=Channel.API, now=T0, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["sam", "SAM", " Sam ", "\uff33\uff41\uff4d"])
def test_four_eyes_compares_names_as_identities(name: str) -> None:
    approval = Approval.requested(request())
    with pytest.raises(NotAllowed, match="four-eyes"):
        attempt(approval, Verb.APPROVE, reviewer=name)
    with pytest.raises(NotAllowed, match="four-eyes"):
        attempt(approval, Verb.MODIFY, reviewer=name, arguments={**TRANSFER, "amount": 5})
    assert attempt(approval, Verb.REJECT, reviewer=name, comment="no").type is EntryType.DECIDED


def test_an_unknown_submitter_is_refused_only_when_configured() -> None:
    approval = Approval.requested(request(requested_by=""))
    with pytest.raises(NotAllowed, match="submitter is unknown"):
        attempt(approval, Verb.APPROVE, refuse_unknown_submitter=True)
    assert attempt(approval, Verb.REJECT, refuse_unknown_submitter=True).type is EntryType.DECIDED
    assert attempt(approval, Verb.APPROVE).type is EntryType.DECIDED
    # Four-eyes off: nobody to compare with, nothing to refuse.
    relaxed = Approval.requested(request(requested_by=""), Policy(four_eyes=False))
    assert attempt(relaxed, Verb.APPROVE, refuse_unknown_submitter=True).type is EntryType.DECIDED


def test_a_quorum_counts_one_person_once_however_spelled() -> None:
    approval = Approval.requested(request(), Policy(quorum=2))
    approval.apply(attempt(approval, Verb.APPROVE, reviewer="ann"))
    with pytest.raises(AlreadyVoted):
        attempt(approval, Verb.APPROVE, reviewer="ANN")


@pytest.mark.parametrize(
    ("edited", "fragment"),
    [
        ({**TRANSFER, "to_account": "bob", "amount": 300}, "to_account cannot be changed"),
        ({**TRANSFER, "from_account": "alice"}, "from_account cannot be changed"),
        ({**TRANSFER, "amount": 1_000_000}, "lowered but not raised"),
        ({**TRANSFER, "amount": 5, "memo": "x"}, "memo was not in the request"),
        ({**TRANSFER, "amount": 0.001}, "multiple of 0.01"),
    ],
)
def test_an_edit_cannot_widen_the_request(edited: dict[str, object], fragment: str) -> None:
    approval = Approval.requested(request())
    with pytest.raises(InvalidDecision, match=fragment):
        attempt(approval, Verb.MODIFY, arguments=edited)


def test_an_edit_that_narrows_is_a_modified_decision_naming_the_call() -> None:
    approval = Approval.requested(request())
    approval.apply(attempt(approval, Verb.MODIFY, arguments={**TRANSFER, "amount": 80}))
    decided = approval.decision
    assert decided is not None
    assert decided.arguments == {**TRANSFER, "amount": 80}
    assert (decided.agent, decided.tool, decided.tool_call_id) == ("banking", "transfer", "call-1")


def test_a_left_out_field_is_compared_as_its_schema_default() -> None:
    """The agent runs an edit with the tool's defaults filled in; so does this check."""
    properties: dict[str, Any] = SCHEMA["properties"]  # type: ignore[assignment]
    schema = {
        **SCHEMA,
        "properties": {
            **properties,
            "from_account": {"type": "string", "default": "checking"},
        },
        "required": ["to_account", "amount"],
    }
    approval = Approval.requested(request(arguments_schema=schema))
    narrowed = {"to_account": "alice", "amount": 80}
    approval.apply(attempt(approval, Verb.MODIFY, arguments=narrowed))
    assert approval.decision is not None
    assert approval.decision.arguments == narrowed
    other = Approval.requested(
        request(arguments_schema=schema, arguments={**TRANSFER, "from_account": "savings"})
    )
    with pytest.raises(InvalidDecision, match="from_account cannot be changed"):
        attempt(other, Verb.MODIFY, arguments=narrowed)


def test_a_signed_decision_verifies_and_an_altered_one_does_not() -> None:
    signer = DecisionSigner.generate()
    approval = Approval.requested(request())
    entry = attempt(approval, Verb.APPROVE)
    event = entry.event()
    assert isinstance(event, ApprovalDecided)
    signed = signer.sign(event)
    verifier = DecisionVerifier([signer.key.public_key()])
    verifier.verify(signed)
    with pytest.raises(ValueError, match="altered or forged"):
        verifier.verify(signed.model_copy(update={"arguments": {**TRANSFER, "to_account": "bob"}}))
