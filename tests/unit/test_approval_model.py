"""The approval state machine, with no broker and no database."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hitl_approval.domain.model import (
    AlreadyDecided,
    AlreadyVoted,
    Approval,
    Entry,
    EntryType,
    InvalidDecision,
    NotAllowed,
    NotDue,
    Status,
    TooLate,
    Verb,
)
from hitl_approval.domain.policy import Policy
from hitl_contracts import ApprovalRequested, Channel, Decision

from tests.factories import approval_request

T0 = datetime(2026, 1, 1, 12, tzinfo=UTC)


def request(**overrides: Any) -> ApprovalRequested:
    fields: dict[str, Any] = {"correlation_id": "c1", "run_id": "r1", "reason": "over threshold"}
    return approval_request(at=T0, **{**fields, **overrides})


def _nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = {"a": value}
    return value


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
    approval.apply(late.value.timeout)
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


def test_stream_round_trips_policy_and_votes() -> None:
    approval = Approval.requested(request(risk_level="critical"), Policy(quorum=2))
    approval.apply(
        approval.decide(Verb.APPROVE, reviewer="ann", channel=Channel.WEB, now=T0, comment="ok")
    )
    again = Approval.from_entries(approval.entries)
    assert again.policy.quorum == 2
    assert again.approvers == ["ann"]
    assert again.status is Status.PENDING


# --- quorum -------------------------------------------------------------------


def quorum(n: int = 2, **overrides: object) -> Approval:
    return Approval.requested(request(**overrides), Policy(quorum=n))


def vote(approval: Approval, verb: Verb, reviewer: str, **kw: object) -> Entry:
    entry = approval.decide(verb, reviewer=reviewer, channel=Channel.API, now=T0, **kw)  # type: ignore[arg-type]
    approval.apply(entry)
    return entry


def test_first_approval_under_a_quorum_is_a_vote_and_stays_pending() -> None:
    approval = quorum(2)
    entry = vote(approval, Verb.APPROVE, "ann")
    assert entry.type is EntryType.VOTE
    assert not entry.publish, "a vote publishes nothing"
    assert approval.status is Status.PENDING
    assert approval.approvers == ["ann"]


def test_second_distinct_approval_decides_and_names_both_approvers() -> None:
    approval = quorum(2)
    vote(approval, Verb.APPROVE, "ann")
    entry = vote(approval, Verb.APPROVE, "bob", comment="agreed")
    assert entry.type is EntryType.DECIDED
    assert entry.publish
    decided = approval.decision
    assert decided is not None
    assert decided.decision is Decision.APPROVED
    assert decided.approvers == ["ann", "bob"]
    assert decided.reviewer == "bob"
    assert decided.arguments == {"to_account": "alice", "amount": 500}


def test_the_same_reviewer_cannot_fill_a_quorum_alone() -> None:
    approval = quorum(2)
    vote(approval, Verb.APPROVE, "ann")
    with pytest.raises(AlreadyVoted) as err:
        approval.decide(Verb.APPROVE, reviewer="ann", channel=Channel.SLACK, now=T0)
    assert "needs 1 more" in str(err.value)
    assert err.value.approval.status is Status.PENDING


def test_any_rejection_ends_a_quorum() -> None:
    approval = quorum(3)
    vote(approval, Verb.APPROVE, "ann")
    vote(approval, Verb.APPROVE, "bob")
    entry = vote(approval, Verb.REJECT, "cyd", comment="no")
    assert entry.type is EntryType.DECIDED
    assert approval.status is Status.REJECTED


def test_an_edit_under_a_quorum_restarts_the_count_for_the_new_arguments() -> None:
    approval = quorum(2)
    vote(approval, Verb.APPROVE, "ann")
    edited = {"to_account": "alice", "amount": 80}
    vote(approval, Verb.MODIFY, "bob", arguments=edited)
    assert approval.approvers == ["bob"], "ann approved other arguments"
    assert approval.proposal == edited
    vote(approval, Verb.APPROVE, "ann")
    decided = approval.decision
    assert decided is not None
    assert decided.decision is Decision.MODIFIED
    assert decided.arguments == edited
    assert decided.approvers == ["bob", "ann"]


def test_two_concurrent_completing_votes_compete_for_one_seq() -> None:
    approval = quorum(2)
    vote(approval, Verb.APPROVE, "ann")
    first = approval.decide(Verb.APPROVE, reviewer="bob", channel=Channel.API, now=T0)
    second = approval.decide(Verb.APPROVE, reviewer="cyd", channel=Channel.API, now=T0)
    assert first.seq == second.seq == 2, "the unique seq lets only one of them in"


# --- who may decide -------------------------------------------------------------


def test_four_eyes_refuses_the_submitter_but_lets_them_reject() -> None:
    approval = Approval.requested(request(requested_by="sam"), Policy(four_eyes=True))
    for verb in (Verb.APPROVE, Verb.MODIFY):
        with pytest.raises(NotAllowed, match="four-eyes"):
            approval.decide(
                verb, reviewer="sam", channel=Channel.API, now=T0, arguments={"amount": 1}
            )
    entry = approval.decide(Verb.REJECT, reviewer="sam", channel=Channel.API, now=T0)
    assert entry.type is EntryType.DECIDED


def test_four_eyes_can_be_switched_off() -> None:
    approval = Approval.requested(request(requested_by="sam"), Policy(four_eyes=False))
    entry = approval.decide(Verb.APPROVE, reviewer="sam", channel=Channel.API, now=T0)
    approval.apply(entry)
    assert approval.status is Status.APPROVED
    assert approval.decision is not None
    assert approval.decision.reviewer == "sam"


def test_groups_restrict_who_decides_at_all() -> None:
    approval = Approval.requested(request(), Policy(groups=["finance", "ops"]))
    with pytest.raises(NotAllowed, match="finance, ops"):
        approval.decide(
            Verb.REJECT, reviewer="ann", channel=Channel.API, now=T0, groups=frozenset({"hr"})
        )
    approval.decide(
        Verb.APPROVE, reviewer="ann", channel=Channel.API, now=T0, groups=frozenset({"ops"})
    )


def test_modify_is_checked_against_the_tool_schema() -> None:
    schema = {
        "type": "object",
        "properties": {
            "to_account": {"type": "string"},
            "amount": {"type": "number", "minimum": 0},
        },
        "required": ["to_account", "amount"],
    }
    approval = Approval.requested(request(arguments_schema=schema))
    with pytest.raises(InvalidDecision, match="amount") as err:
        approval.decide(
            Verb.MODIFY,
            reviewer="a",
            channel=Channel.API,
            now=T0,
            arguments={"to_account": "x", "amount": "lots"},
        )
    assert "transfer tool's schema" in str(err.value)
    approval.decide(
        Verb.MODIFY,
        reviewer="a",
        channel=Channel.API,
        now=T0,
        arguments={"to_account": "x", "amount": 5},
    )


# --- deadlines ------------------------------------------------------------------


def test_policy_timeout_caps_the_requested_deadline() -> None:
    approval = Approval.requested(request(), Policy(timeout_seconds=60))
    assert approval.expires_at == T0 + timedelta(seconds=60)
    longer = Approval.requested(request(), Policy(timeout_seconds=7200))
    assert longer.expires_at == T0 + timedelta(minutes=30), "a ceiling never lengthens"


def test_escalate_extends_the_deadline_once_then_expires() -> None:
    approval = Approval.requested(
        request(on_timeout="escalate", expires_at=T0 + timedelta(seconds=10))
    )
    at = T0 + timedelta(seconds=10)
    entry = approval.expire(at)
    assert entry.type is EntryType.ESCALATED
    event = entry.event()
    assert isinstance(event, ApprovalRequested)
    assert event.escalated
    assert event.correlation_id == "c1"
    assert event.event_id != approval.request.event_id
    approval.apply(entry)
    assert approval.escalated
    assert approval.status is Status.PENDING
    assert approval.expires_at == at + timedelta(seconds=10), "extended by as long again"
    with pytest.raises(NotDue):
        approval.expire(at + timedelta(seconds=5))
    final = approval.expire(at + timedelta(seconds=10))
    approval.apply(final)
    assert status_of(approval) is Status.EXPIRED
    assert approval.decision is not None
    assert "already escalated once" in approval.decision.comment


def test_a_decision_after_the_deadline_of_an_escalating_request_triggers_the_escalation() -> None:
    approval = Approval.requested(
        request(on_timeout="escalate", escalation_seconds=60, expires_at=T0 + timedelta(seconds=1))
    )
    late = T0 + timedelta(seconds=2)
    with pytest.raises(TooLate) as err:
        approval.decide(Verb.APPROVE, reviewer="a", channel=Channel.API, now=late)
    approval.apply(err.value.timeout)
    assert approval.expires_at == late + timedelta(seconds=60)
    entry = approval.decide(Verb.APPROVE, reviewer="a", channel=Channel.API, now=late)
    assert entry.type is EntryType.DECIDED, "after the escalation the decision is in time"


def test_policy_can_make_a_request_escalate() -> None:
    approval = Approval.requested(request(), Policy(on_timeout="escalate", escalation_seconds=5))
    entry = approval.expire(T0 + timedelta(minutes=30))
    assert entry.type is EntryType.ESCALATED


def test_cancel_records_the_caller_through_the_system_channel() -> None:
    approval = Approval.requested(request())
    approval.apply(approval.cancel(actor="agent-service", now=T0, comment="user stopped it"))
    decided = approval.decision
    assert decided is not None
    assert (decided.decision, decided.reviewer, decided.channel) == (
        Decision.CANCELLED,
        "agent-service",
        Channel.SYSTEM,
    )
    with pytest.raises(AlreadyDecided):
        approval.cancel(actor="x", now=T0)


@pytest.mark.parametrize(
    ("arguments", "fragment"),
    [
        ({"x": float("nan")}, "arguments.x: nan is not a JSON number"),
        ({"x": [1, float("inf")]}, r"arguments.x\[1\]: inf"),
        ({"d": _nested(40)}, "nested deeper than 32 levels"),
    ],
)
def test_edited_arguments_must_be_plain_json(arguments: dict[str, object], fragment: str) -> None:
    with pytest.raises(InvalidDecision, match=fragment):
        Approval.requested(request()).decide(
            Verb.MODIFY, reviewer="a", channel=Channel.API, now=T0, arguments=arguments
        )


def status_of(approval: Approval) -> Status:
    """Read afresh: after `apply`, an earlier `assert approval.status is ...` no longer holds."""
    return approval.status
