"""Notifier reliability through real processes: retries, dead letters, de-dup, reminders.

Approval requests are published straight to Kafka (as any agent may), so each test
controls tool, risk and timeout. Slack's Web API and the webhook receiver are local
HTTP recorders that can be told to fail; email goes to a real SMTP server.
"""

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from tests.support import recorder
from tests.support.infra import Infra
from tests.support.notifier import TopicTail, publish, request
from tests.support.smtp import SmtpServer, smtp_server
from tests.support.stack import Stack
from tests.support.wait import eventually

POST = "/api/chat.postMessage"
UPDATE = "/api/chat.update"

ROUTES = [
    {"name": "flaky", "tools": ["flaky_tool"], "slack": ["C_FLAKY"], "email": ["ops@example.com"]},
    {
        "name": "broken",
        "tools": ["broken_tool"],
        "slack": ["C_BROKEN"],
        "email": ["ops@example.com"],
    },
    {"name": "crash", "tools": ["crash_tool"], "slack": ["C_CRASH"]},
    {
        "name": "escalating",
        "agents": ["esc_agent"],
        "slack": ["C_FIRST"],
        "escalation": {"slack": ["C_BOSS"], "email": ["boss@example.com"]},
    },
]


@pytest.fixture(scope="module")
def smtp() -> Iterator[SmtpServer]:
    with smtp_server() as server:
        yield server


@pytest.fixture(scope="module")
def rstack(
    infra: Infra,
    slack: tuple[recorder.Recorder, str],
    hooks: tuple[recorder.Recorder, str],
    smtp: SmtpServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    logs = tmp_path_factory.mktemp("notifier-reliability-logs")
    stack = Stack(
        infra,
        logs,
        env_extra={
            "NOTIFIER_ROUTES": json.dumps(ROUTES),
            "NOTIFIER_SLACK_CHANNELS": "C_REVIEW",
            "NOTIFIER_EMAIL_TO": "reviewers@example.com",
            "NOTIFIER_WEBHOOK_URLS": hooks[1] + "/hook",
            "NOTIFIER_SLACK_API_URL": slack[1] + "/api",
            "NOTIFIER_SLACK_BOT_TOKEN": "xoxb-test",
            "NOTIFIER_SMTP_HOST": smtp.host,
            "NOTIFIER_SMTP_PORT": str(smtp.port),
            "NOTIFIER_ATTEMPTS": "5",
            "NOTIFIER_BACKOFF_BASE_SECONDS": "0.05",
            "NOTIFIER_TICK_SECONDS": "0.2",
            "NOTIFIER_TIMEOUT_SECONDS": "2",
            "NOTIFIER_LEASE_SECONDS": "6",
            "NOTIFIER_EMAIL_FOLLOW_UP": "true",
        },
    )
    try:
        stack.start("approval")
        stack.start("notifier")
        yield stack
    finally:
        stack.close()
        print(f"service logs: {logs}")


@pytest.fixture
async def tail(infra: Infra, rstack: Stack) -> AsyncIterator[TopicTail]:
    topics = [f"{rstack.prefix}notifications", f"{rstack.prefix}notifications.dlq"]
    async with TopicTail(infra.kafka_bootstrap_servers, topics).running() as t:
        yield t


def requested_topic(stack: Stack) -> str:
    return f"{stack.prefix}approval.requested"


def posts_to(slack: recorder.Recorder, channel: str, *, ok: bool | None = None) -> list[Any]:
    return [r for r in slack.at(POST, ok=ok) if r.json().get("channel") == channel]


def posts_about(slack: recorder.Recorder, cid: str, *, ok: bool | None = True) -> list[Any]:
    return [r for r in slack.at(POST, ok=ok) if cid in r.body.decode()]


async def test_slack_failing_three_times_then_ok_delivers_exactly_once(
    infra: Infra, rstack: Stack, slack: tuple[recorder.Recorder, str], tail: TopicTail
) -> None:
    api = slack[0]
    api.fail(POST, times=3, when=lambda r: r.json().get("channel") == "C_FLAKY")
    event = request(tool="flaky_tool")
    await publish(infra.kafka_bootstrap_servers, requested_topic(rstack), event)

    async def sent() -> list[dict[str, Any]]:
        return tail.on(
            f"{rstack.prefix}notifications",
            correlation_id=event.correlation_id,
            channel="slack",
            status="sent",
        )

    (outcome,) = await eventually(sent, what="the Slack delivery to succeed")
    assert outcome["attempts"] == 4
    assert outcome["kind"] == "requested"
    assert len(posts_to(api, "C_FLAKY", ok=False)) == 3
    delivered = posts_to(api, "C_FLAKY", ok=True)
    assert len(delivered) == 1, "exactly one message reached the channel"
    assert event.correlation_id in delivered[0].body.decode()


async def test_slack_down_for_good_dead_letters_while_email_still_goes_out(
    infra: Infra,
    rstack: Stack,
    slack: tuple[recorder.Recorder, str],
    smtp: SmtpServer,
    tail: TopicTail,
) -> None:
    api = slack[0]
    api.fail(POST, times=None, when=lambda r: r.json().get("channel") == "C_BROKEN")
    event = request(tool="broken_tool")
    await publish(infra.kafka_bootstrap_servers, requested_topic(rstack), event)
    cid = event.correlation_id

    async def dead() -> list[dict[str, Any]]:
        return tail.on(f"{rstack.prefix}notifications.dlq", correlation_id=cid)

    (letter,) = await eventually(dead, what="the failed Slack delivery in notifications.dlq")
    assert letter["channel"] == "slack"
    assert letter["recipient"] == "C_BROKEN"
    assert letter["attempts"] == 5
    assert "HTTP 500" in letter["error"]
    (failed,) = tail.on(
        f"{rstack.prefix}notifications", correlation_id=cid, channel="slack", status="failed"
    )
    assert failed["attempts"] == 5
    assert posts_to(api, "C_BROKEN", ok=True) == []

    async def mailed() -> list[Any]:
        return smtp.mailbox.to("ops@example.com", **{"X-Hitl-Correlation-Id": cid})

    (mail,) = await eventually(mailed, what="the email, unaffected by Slack being down")
    assert "broken_tool" in mail["Subject"]
    (email_sent,) = tail.on(
        f"{rstack.prefix}notifications", correlation_id=cid, channel="email", status="sent"
    )
    assert email_sent["attempts"] == 1

    async with rstack.reviewer() as reviewer:

        async def failure_in_history() -> list[Any]:
            response = await reviewer.get(f"/v1/approvals/{cid}/history")
            items = response.json() if response.status_code == 200 else []
            return [h for h in items if h["type"] == "failed"]

        (failure,) = await eventually(failure_in_history, what="the failure in the history")
        assert failure["channel"] == "slack"
        assert failure["detail"]["attempts"] == 5
        assert "HTTP 500" in failure["detail"]["error"]
        history = (await reviewer.get(f"/v1/approvals/{cid}/history")).json()
        assert any(h["type"] == "notified" and h["channel"] == "email" for h in history)


async def test_the_same_request_delivered_three_times_notifies_once_per_channel(
    infra: Infra,
    rstack: Stack,
    slack: tuple[recorder.Recorder, str],
    hooks: tuple[recorder.Recorder, str],
    smtp: SmtpServer,
    tail: TopicTail,
) -> None:
    event = request()
    await publish(infra.kafka_bootstrap_servers, requested_topic(rstack), event, times=3)
    # Same run id, so the same partition: once this one is notified, the three are handled.
    sentinel = request(run_id=event.run_id)
    await publish(infra.kafka_bootstrap_servers, requested_topic(rstack), sentinel)

    async def all_sent() -> bool:
        done = tail.on(f"{rstack.prefix}notifications", status="sent")
        cids = [(d["correlation_id"], d["channel"]) for d in done]
        return all(
            (cid, ch) in cids
            for cid in (event.correlation_id, sentinel.correlation_id)
            for ch in ("slack", "email", "webhook")
        )

    await eventually(all_sent, what="both requests notified on all three channels")
    cid = event.correlation_id
    assert len(posts_about(slack[0], cid)) == 1
    assert len(smtp.mailbox.to("reviewers@example.com", **{"X-Hitl-Correlation-Id": cid})) == 1
    assert len(hooks[0].matching("correlation_id", cid)) == 1
    outcomes = tail.on(f"{rstack.prefix}notifications", correlation_id=cid)
    assert sorted(o["channel"] for o in outcomes) == ["email", "slack", "webhook"]


async def test_reminder_fires_for_a_pending_approval_and_not_for_a_decided_one(
    infra: Infra,
    rstack: Stack,
    slack: tuple[recorder.Recorder, str],
    hooks: tuple[recorder.Recorder, str],
    smtp: SmtpServer,
    tail: TopicTail,
) -> None:
    api = slack[0]
    # The decided one's reminder would be due first (at 2 s), the pending one's at 3 s.
    decided = request(timeout=4)
    pending = request(timeout=6)
    for event in (decided, pending):
        await publish(infra.kafka_bootstrap_servers, requested_topic(rstack), event)

    async with rstack.reviewer() as reviewer:

        async def stored() -> bool:
            response = await reviewer.get(f"/v1/approvals/{decided.correlation_id}")
            return response.status_code == 200

        await eventually(stored, what="the approval service to store the request")
        response = await reviewer.post(
            f"/v1/approvals/{decided.correlation_id}/decision", json={"decision": "approve"}
        )
        assert response.status_code == 200, response.text

    async def reminded() -> list[Any]:
        return smtp.mailbox.to(
            "reviewers@example.com",
            **{"X-Hitl-Correlation-Id": pending.correlation_id, "X-Hitl-Kind": "reminder"},
        )

    (mail,) = await eventually(reminded, timeout=30, what="the reminder email")
    assert str(mail["Subject"]).strip().startswith("[hitl] Reminder: approval still needed")
    reminder_posts = [
        r for r in posts_about(api, pending.correlation_id) if "Reminder" in r.body.decode()
    ]
    assert len(reminder_posts) == 1
    assert reminder_posts[0].json()["channel"] == "C_REVIEW"

    # Past the decided one's reminder time (it came earlier): nothing was sent for it.
    decided_cid = decided.correlation_id
    assert smtp.mailbox.to("reviewers@example.com", **{
        "X-Hitl-Correlation-Id": decided_cid, "X-Hitl-Kind": "reminder"
    }) == []  # fmt: skip
    assert [r for r in posts_about(api, decided_cid) if "Reminder" in r.body.decode()] == []
    kinds = {
        o["kind"] for o in tail.on(f"{rstack.prefix}notifications", correlation_id=decided_cid)
    }
    assert "reminder" not in kinds

    # And the decided one's Slack message was updated to say who approved it.
    async def updated() -> list[Any]:
        return [r for r in api.at(UPDATE, ok=True) if decided_cid in r.body.decode()]

    (update,) = await eventually(updated, what="chat.update of the decided approval")
    text = update.body.decode()
    assert "Approved by dev via api" in text
    assert "hitl_approve" not in text, "the buttons are gone"

    # Webhooks hear the decision; emails get the (configured) follow-up.
    async def decided_hook() -> list[Any]:
        return [
            h
            for h in hooks[0].matching("correlation_id", decided_cid)
            if h.json()["kind"] == "approval.decided"
        ]

    (hook,) = await eventually(decided_hook, what="the approval.decided webhook")
    assert hook.json()["decision"]["decision"] == "approved"
    assert hook.json()["decision"]["reviewer"] == "dev"

    async def follow_up() -> list[Any]:
        return smtp.mailbox.to(
            "reviewers@example.com",
            **{"X-Hitl-Correlation-Id": decided_cid, "X-Hitl-Kind": "decided"},
        )

    (mail,) = await eventually(follow_up, what="the decision follow-up email")
    body = mail.get_body(preferencelist=("plain",)).get_content()
    assert "Outcome: Approved by dev via api" in body
    assert "confirmation page" not in body


async def test_escalation_on_timeout_notifies_the_escalation_route(
    infra: Infra,
    rstack: Stack,
    slack: tuple[recorder.Recorder, str],
    smtp: SmtpServer,
    tail: TopicTail,
) -> None:
    api = slack[0]
    # At the 3 s deadline the approval service extends it once and re-publishes the
    # request with `escalated: true`; the notifier then reaches the escalation route.
    event = request(agent="esc_agent", on_timeout="escalate", timeout=3)
    await publish(infra.kafka_bootstrap_servers, requested_topic(rstack), event)
    cid = event.correlation_id

    async def boss_mail() -> list[Any]:
        return smtp.mailbox.to("boss@example.com", **{"X-Hitl-Correlation-Id": cid})

    (mail,) = await eventually(boss_mail, what="the escalation email")
    assert mail["X-Hitl-Kind"] == "escalation"
    assert str(mail["Subject"]).strip().startswith("[hitl] Escalated: approval needed")
    (boss_post,) = await eventually(
        lambda: _now(posts_to(api, "C_BOSS", ok=True)), what="the escalation Slack message"
    )
    assert "Escalated" in boss_post.body.decode()
    assert cid in boss_post.body.decode()
    first_line = [
        r.body.decode() for r in posts_to(api, "C_FIRST", ok=True) if cid in r.body.decode()
    ]
    assert len(first_line) == 2, "the first line got the request and its reminder, no escalation"
    assert not any("Escalated" in text for text in first_line)

    async with rstack.reviewer() as reviewer:

        async def escalated_in_history() -> list[Any]:
            response = await reviewer.get(f"/v1/approvals/{cid}/history")
            items = response.json() if response.status_code == 200 else []
            types = [h["type"] for h in items]
            notified = [h for h in items if h["detail"].get("kind") == "escalation"]
            return items if "escalated" in types and len(notified) == 2 else []

        history = await eventually(escalated_in_history, what="escalation in the history")
        escalation_notes = [h for h in history if h["detail"].get("kind") == "escalation"]
        assert {h["detail"]["recipient"] for h in escalation_notes} == {
            "C_BOSS",
            "boss@example.com",
        }
        assert all(h["type"] == "notified" for h in escalation_notes)


async def test_a_malformed_decision_is_dead_lettered_and_the_notifier_keeps_going(
    infra: Infra, rstack: Stack, slack: tuple[recorder.Recorder, str], tail: TopicTail
) -> None:
    decided_dlq = f"{rstack.prefix}approval.decided.dlq"
    async with TopicTail(infra.kafka_bootstrap_servers, [decided_dlq]).running() as letters:
        producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap_servers)
        await producer.start()
        try:
            await producer.send_and_wait(
                f"{rstack.prefix}approval.decided", b'{"decision": "approved"', key=b"bad"
            )
        finally:
            await producer.stop()
        event = request()
        await publish(infra.kafka_bootstrap_servers, requested_topic(rstack), event)

        async def dead_lettered() -> list[dict[str, Any]]:
            return [
                d
                for d in letters.on(decided_dlq)
                if d["consumer_group"] == f"{rstack.prefix}hitl-notifier"
            ]

        (letter,) = await eventually(dead_lettered, what="the notifier's dead letter")
        assert "invalid ApprovalDecided" in letter["error"]
    await eventually(
        lambda: _now(posts_about(slack[0], event.correlation_id)),
        what="the next request still notified",
    )


async def test_a_delivery_cut_by_a_crash_resumes_after_restart_exactly_once(
    infra: Infra, rstack: Stack, slack: tuple[recorder.Recorder, str], tail: TopicTail
) -> None:
    api = slack[0]
    # The first attempt hangs in Slack's stand-in while the notifier is killed.
    crash = lambda r: r.json().get("channel") == "C_CRASH"  # noqa: E731
    api.stall(POST, seconds=20, when=crash)
    # When the held request finally gets its answer, the notifier is long dead: a 500
    # keeps it from counting as a delivery.
    api.fail(POST, times=1, when=crash)
    event = request(tool="crash_tool")
    await publish(infra.kafka_bootstrap_servers, requested_topic(rstack), event)

    async def in_flight() -> list[Any]:
        with api.lock:
            return [r for r in api.held if event.correlation_id in r.body.decode()]

    await eventually(in_flight, what="the Slack post to be in flight")
    rstack.stop("notifier", kill=True)
    rstack.start("notifier")

    async def resumed() -> list[Any]:
        return posts_about(api, event.correlation_id)

    (post,) = await eventually(resumed, timeout=60, what="the delivery resumed after its lease")
    assert post.json()["channel"] == "C_CRASH"

    async def recorded() -> list[dict[str, Any]]:
        return tail.on(
            f"{rstack.prefix}notifications", correlation_id=event.correlation_id, status="sent"
        )

    (outcome,) = await eventually(recorded, what="the outcome of the resumed delivery")
    assert outcome["recipient"] == "C_CRASH"
    assert len(posts_about(api, event.correlation_id)) == 1


async def _now(value: Any) -> Any:
    return value
