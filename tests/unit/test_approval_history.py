"""The audit trail merges the decision stream with the notifier's notes in time order."""

from datetime import UTC, datetime, timedelta

from hitl_approval.adapters.storable import dumps, loads, readable
from hitl_approval.domain.history import Note, history
from hitl_approval.domain.model import Approval, Verb
from hitl_approval.domain.policy import Policy
from hitl_contracts import ApprovalRequested, Channel, RequestContext

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def note(seconds: float, kind: str = "requested", status: str = "sent") -> Note:
    return Note("c1", at(seconds), "slack", "#approvals", kind, status, 1)


def test_history_interleaves_votes_decision_and_notifications() -> None:
    approval = Approval.requested(
        ApprovalRequested(
            correlation_id="c1",
            run_id="r1",
            agent="banking",
            tool="transfer",
            arguments={"amount": 500},
            reason="big",
            context=RequestContext(user_request="u"),
            requested_at=T0,
            expires_at=at(3600),
        ),
        Policy(quorum=2),
    )
    approval.apply(approval.decide(Verb.APPROVE, reviewer="ann", channel=Channel.WEB, now=at(20)))
    approval.apply(approval.decide(Verb.APPROVE, reviewer="bob", channel=Channel.SLACK, now=at(40)))
    notes = [note(1), note(30, "reminder"), note(2, status="failed"), note(41, "decided")]

    trail = history(approval, notes)

    assert [(e.type, e.actor, e.channel) for e in trail] == [
        ("requested", "banking", "system"),
        ("notified", "notifier", "slack"),
        ("failed", "notifier", "slack"),
        ("vote", "ann", "web"),
        ("reminded", "notifier", "slack"),
        ("approved", "bob", "slack"),
        ("notified", "notifier", "slack"),
    ]
    assert trail[2].detail["status"] == "failed"
    assert trail[5].detail["approvers"] == ["ann", "bob"]


def test_store_encoding_keeps_what_the_store_would_refuse() -> None:
    tricky = {"$ref": "#/x", "a.b": 1, "n\x00": 2**70, "f": float("inf"), "ok": [1, {"$x": 2}]}
    assert loads(dumps({"k": 2**70, "$ref": "#"})) == {"k": 2**70, "$ref": "#"}
    safe = readable(tricky)
    assert safe["ok"] == [1, {"\uff04x": 2}]
    assert safe["a\uff0eb"] == 1
    assert safe["n\u2400"] == str(2**70)
    assert safe["f"] == "inf"
    assert "\uff04ref" in safe
