"""The approval state machine, with no broker and no database."""

from datetime import UTC, datetime, timedelta

import pytest
from hitl_approval.domain.model import (
    AlreadyDecided,
    Approval,
    InvalidDecision,
    NotDue,
    Status,
    TooLate,
    Verb,
)
from hitl_shared.contracts import ApprovalRequested, Channel, Decision, RequestContext

T0 = datetime(2026, 1, 1, 12, tzinfo=UTC)


def request(**overrides: object) -> ApprovalRequested:
    fields: dict[str, object] = {
        "correlation_id": "c1",
        "run_id": "r1",
        "agent": "banking",
        "tool": "transfer",
        "arguments": {"to_account": "alice", "amount": 500},
        "reason": "over threshold",
        "context": RequestContext(user_request="Transfer 500 to Alice"),
        "requested_at": T0,
        "expires_at": T0 + timedelta(minutes=30),
    }
    return ApprovalRequested.model_validate({**fields, **overrides})


def decide(approval: Approval, verb: Verb, **kw: object) -> Approval:
    entry = approval.decide(verb, reviewer="ann", channel=Channel.API, now=T0, **kw)  # type: ignore[arg-type]
    return approval.apply(entry)


def test_new_approval_is_pending_at_version_zero() -> None:
    approval = Approval.requested(request())
    assert approval.status is Status.PENDING
    assert approval.version == 0
    assert approval.decision is None


def test_approve_keeps_original_arguments_and_records_who() -> None:
    approval = decide(Approval.requested(request()), Verb.APPROVE, comment="ok")
    assert approval.status is Status.APPROVED
    assert approval.version == 1
    decided = approval.decision
    assert decided is not None
    assert decided.arguments == {"to_account": "alice", "amount": 500}
    assert (decided.reviewer, decided.channel, decided.comment) == ("ann", Channel.API, "ok")


def test_modify_carries_the_edited_arguments() -> None:
    edited = {"to_account": "alice", "amount": 80}
    approval = decide(Approval.requested(request()), Verb.MODIFY, arguments=edited)
    assert approval.status is Status.MODIFIED
    assert approval.decision is not None
    assert approval.decision.arguments == edited


def test_modify_without_arguments_is_invalid() -> None:
    with pytest.raises(InvalidDecision):
        Approval.requested(request()).decide(Verb.MODIFY, reviewer="a", channel=Channel.API, now=T0)


def test_reject_has_no_arguments() -> None:
    approval = decide(Approval.requested(request()), Verb.REJECT, comment="no")
    assert approval.status is Status.REJECTED
    assert approval.decision is not None
    assert approval.decision.arguments is None


@pytest.mark.parametrize("verb", list(Verb))
def test_second_decision_is_refused_with_the_current_state(verb: Verb) -> None:
    approval = decide(Approval.requested(request()), Verb.REJECT)
    with pytest.raises(AlreadyDecided) as err:
        approval.decide(verb, reviewer="bob", channel=Channel.API, now=T0, arguments={"a": 1})
    assert err.value.approval.status is Status.REJECTED


def test_decision_after_deadline_loses_to_the_timeout() -> None:
    approval = Approval.requested(request(expires_at=T0 + timedelta(seconds=1)))
    with pytest.raises(TooLate) as late:
        approval.decide(
            Verb.APPROVE, reviewer="a", channel=Channel.API, now=T0 + timedelta(seconds=2)
        )
    approval.apply(late.value.expiry)
    assert approval.status is Status.EXPIRED
    assert approval.decision is not None
    assert approval.decision.decision is Decision.EXPIRED
    assert "no decision within the timeout" in approval.decision.comment


def test_expire_before_deadline_is_refused() -> None:
    with pytest.raises(NotDue):
        Approval.requested(request()).expire(T0)


def test_expire_after_decision_is_refused() -> None:
    approval = decide(Approval.requested(request()), Verb.APPROVE)
    with pytest.raises(AlreadyDecided):
        approval.expire(T0 + timedelta(hours=1))


def test_stream_round_trips() -> None:
    approval = decide(Approval.requested(request()), Verb.APPROVE)
    again = Approval.from_entries(approval.entries)
    assert (again.status, again.version) == (Status.APPROVED, 1)
