"""What reviewers receive (pure rendering) and how receivers verify it."""

import email
import email.policy
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest
from hitl_approval.entrypoints.slack import signature as slack_signature
from hitl_contracts import Channel, NotificationKind
from hitl_notifier.channels import email_compose, slack_blocks, webhook
from hitl_notifier.domain.notice import Notice
from hitl_shared import links

from tests.factories import approval_decision
from tests.support.notifier import request

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def notice(kind: NotificationKind = NotificationKind.REQUESTED, comment: str = "") -> Notice:
    req = request(
        requested_at=NOW,
        expires_at=NOW + timedelta(minutes=30),
        arguments={"to_account": "alice", "amount": 500, "memo": "<b>rent</b>"},
    )
    decided = None
    if kind is NotificationKind.DECIDED:
        decided = approval_decision(
            req, at=NOW + timedelta(minutes=3), channel=Channel.SLACK, comment=comment
        )
    return Notice(
        kind, req, f"https://hitl.example/ui/approvals/{req.correlation_id}", NOW, decided
    )


def test_slack_request_has_fields_and_buttons_carrying_the_correlation_id() -> None:
    n = notice()
    message = slack_blocks.message(n)
    assert message["text"] == "Approval needed: banking wants to call transfer"
    blocks = message["blocks"]
    fields = [f["text"] for f in blocks[1]["fields"]]
    assert fields[:3] == ["*Agent*\nbanking", "*Tool*\n`transfer`", "*Risk*\nhigh"]
    assert fields[3].startswith("*Time left*\n30 minutes (until <!date^")
    (actions,) = [b for b in blocks if b["type"] == "actions"]
    assert [(e["action_id"], e.get("value")) for e in actions["elements"]] == [
        ("hitl_approve", n.request.correlation_id),
        ("hitl_reject", n.request.correlation_id),
        ("hitl_open", None),
    ]


def test_slack_decided_message_drops_the_buttons_and_says_who_decided() -> None:
    message = slack_blocks.message(notice(NotificationKind.DECIDED, comment="fine"))
    assert not [b for b in message["blocks"] if b["type"] == "actions"]
    last = message["blocks"][-1]["text"]["text"]
    assert last == "Approved by alice via slack at 2026-03-01 12:03 UTC: fine"
    assert message["text"].startswith("Approved: banking wants to call transfer")


def test_slack_texts_are_clipped_to_slacks_limits() -> None:
    n = notice()
    huge = n.request.model_copy(update={"arguments": {"blob": "x" * 10_000}})
    message = slack_blocks.message(Notice(n.kind, huge, n.approval_url, NOW))
    assert all(len(b.get("text", {}).get("text", "")) <= 3000 for b in message["blocks"])


def test_email_has_text_and_html_with_both_links_and_escapes_arguments() -> None:
    links_ = email_compose.ActionLinks(
        "https://a.example/ok?token=1", "https://a.example/no?token=2"
    )
    mail = email_compose.compose(notice(), sender="hitl <h@x>", recipient="r@x", links=links_)
    parsed = email.message_from_bytes(bytes(mail), policy=email.policy.default)
    text = parsed.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    html = parsed.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]
    assert "https://a.example/ok?token=1" in text
    assert "https://a.example/no?token=2" in text
    assert "href='https://a.example/ok?token=1'" in html
    assert "&lt;b&gt;rent&lt;/b&gt;" in html, "arguments cannot inject markup"
    assert parsed["X-Hitl-Kind"] == "requested"


def test_decision_follow_up_email_has_no_action_links() -> None:
    mail = email_compose.compose(
        notice(NotificationKind.DECIDED), sender="h@x", recipient="r@x", links=None
    )
    text = mail.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    assert "Outcome: Approved by alice via slack" in text
    assert "confirmation page" not in text


def test_webhook_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    body = b'{"kind":"approval.requested"}'
    expected = hmac.new(b"secret", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert webhook.signature("secret", "1700000000", body) == f"v1={expected}"
    payload = webhook.payload(notice(NotificationKind.DECIDED))
    assert payload["kind"] == "approval.decided"
    assert payload["decision"]["reviewer"] == "alice"


def test_slack_signature_verification() -> None:
    body = b"payload=%7B%7D"
    good = slack_signature.sign("s3cret", "1700000000", body)
    slack_signature.verify(
        "s3cret", timestamp="1700000000", signature=good, body=body, now=1700000100, max_age=300
    )
    cases = [
        ("1700000000", "v0=" + "0" * 64, 1700000100, "does not match"),
        ("1700000000", good, 1700000301, "replay"),
        (None, good, 1700000100, "missing"),
        ("soon", good, 1700000100, "not a number"),
    ]
    for timestamp, signature, now, reason in cases:
        with pytest.raises(slack_signature.BadSignature, match=reason):
            slack_signature.verify(
                "s3cret", timestamp=timestamp, signature=signature, body=body, now=now, max_age=300
            )


def test_link_tokens_round_trip_and_refuse_tampering_and_expiry() -> None:
    token = links.sign(
        "k",
        correlation_id="c1",
        action="reject",
        recipient="a@x",
        expires_at=NOW + timedelta(hours=1),
    )
    claim = links.verify("k", token, now=NOW)
    assert (claim.correlation_id, claim.action, claim.recipient) == ("c1", "reject", "a@x")
    with pytest.raises(links.BadLink, match="signature"):
        links.verify("other", token, now=NOW)
    version, body, mac = token.split(".")
    forged_body = body[:-1] + ("A" if body[-1] != "A" else "B")
    with pytest.raises(links.BadLink, match="signature"):
        links.verify("k", f"{version}.{forged_body}.{mac}", now=NOW)
    with pytest.raises(links.BadLink, match="expired"):
        links.verify("k", token, now=NOW + timedelta(hours=2))
    with pytest.raises(links.BadLink, match="not a valid"):
        links.verify("k", "nonsense", now=NOW)
    again = links.sign(
        "k",
        correlation_id="c1",
        action="reject",
        recipient="a@x",
        expires_at=NOW + timedelta(hours=1),
    )
    assert links.verify("k", again, now=NOW).token_id != claim.token_id, "each link is its own"
