"""Reviewers told where they are, deciding where they were told: Slack, email, webhooks.

The whole stack runs as real processes. Slack's Web API, Slack's `response_url` and
the webhook receiver are local HTTP recorders; email goes through a real SMTP
server that requires STARTTLS and a login, as a production relay would.
"""

import hashlib
import hmac
import json
import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from hitl_shared import links

from tests.support import recorder
from tests.support.fake_openai import Call, Say, ScriptedLLM
from tests.support.infra import Infra
from tests.support.notifier import publish, request, reviewer_entry
from tests.support.smtp import SmtpServer, smtp_server
from tests.support.stack import Stack, approvals_of
from tests.support.wait import eventually

LINK_SECRET = "test-link-secret"
SLACK_SECRET = "test-slack-signing-secret"
WEBHOOK_SECRET = "test-webhook-secret"
POST = "/api/chat.postMessage"
UPDATE = "/api/chat.update"
ALICE = reviewer_entry("alice", "alice-token", email="alice@example.com", slack_user_id="U_ALICE")


@pytest.fixture(scope="module")
def smtp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SmtpServer]:
    tls = tmp_path_factory.mktemp("smtp-tls")
    with smtp_server(tls_dir=tls, username="hitl", password="smtp-password") as server:
        yield server


@pytest.fixture(scope="module")
def cstack(
    infra: Infra,
    llm: tuple[ScriptedLLM, str],
    slack: tuple[recorder.Recorder, str],
    hooks: tuple[recorder.Recorder, str],
    smtp: SmtpServer,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    logs = tmp_path_factory.mktemp("notifier-channels-logs")
    assert smtp.ca_file is not None
    stack = Stack(
        infra,
        logs,
        env_extra={
            "OPENAI_API_KEY": "test-key",
            "OPENAI_BASE_URL": llm[1] + "/v1",
            "OPENAI_MODEL": "scripted",
            "HITL_LINK_SECRET": LINK_SECRET,
            "APPROVAL_SLACK_SIGNING_SECRET": SLACK_SECRET,
            "APPROVAL_REVIEWERS": json.dumps([ALICE]),
            "NOTIFIER_SLACK_CHANNELS": "C_REVIEW",
            "NOTIFIER_EMAIL_TO": "alice@example.com",
            "NOTIFIER_WEBHOOK_URLS": hooks[1] + "/hook",
            "NOTIFIER_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "NOTIFIER_SLACK_API_URL": slack[1] + "/api",
            "NOTIFIER_SLACK_BOT_TOKEN": "xoxb-test",
            "NOTIFIER_SMTP_HOST": smtp.host,
            "NOTIFIER_SMTP_PORT": str(smtp.port),
            "NOTIFIER_SMTP_STARTTLS": "true",
            "NOTIFIER_SMTP_USERNAME": "hitl",
            "NOTIFIER_SMTP_PASSWORD": "smtp-password",
            "NOTIFIER_SMTP_CA_FILE": smtp.ca_file,
            "NOTIFIER_REMINDER_FRACTION": "0",
        },
    )
    try:
        stack.start_all()
        yield stack
    finally:
        stack.close()
        print(f"service logs: {logs}")


# helpers


def marker() -> str:
    return f"[{uuid.uuid4().hex[:8]}]"


async def start_transfer(stack: Stack, llm: ScriptedLLM, amount: float) -> tuple[str, str]:
    """A banking run that pauses for approval; returns (run_id, correlation_id)."""
    tag = marker()
    llm.script(
        tag,
        [Call("transfer", {"to_account": "alice", "amount": amount})],
        Say("Final: {tool_results}"),
    )
    async with stack.agent() as agent, stack.reviewer() as reviewer:
        response = await agent.post("/v1/runs", json={"input": f"Transfer {amount} to Alice {tag}"})
        assert response.status_code == 202, response.text
        run_id: str = response.json()["run_id"]

        async def pending() -> list[Any]:
            return await approvals_of(reviewer, run_id, "pending")

        (approval,) = await eventually(pending, timeout=60, what="the pending approval")
    return run_id, str(approval["correlation_id"])


async def pending_via_kafka(infra: Infra, stack: Stack) -> str:
    event = request()
    await publish(infra.kafka_bootstrap_servers, f"{stack.prefix}approval.requested", event)
    async with stack.reviewer() as reviewer:

        async def stored() -> bool:
            response = await reviewer.get(f"/v1/approvals/{event.correlation_id}")
            return response.status_code == 200

        await eventually(stored, what="the approval service to store the request")
    return event.correlation_id


async def status_of(stack: Stack, cid: str) -> dict[str, Any]:
    async with stack.reviewer() as reviewer:
        response = await reviewer.get(f"/v1/approvals/{cid}")
        response.raise_for_status()
        body: dict[str, Any] = response.json()
        return body


async def mail_for(smtp: SmtpServer, address: str, cid: str) -> Any:
    async def found() -> list[Any]:
        return smtp.mailbox.to(address, **{"X-Hitl-Correlation-Id": cid})

    (mail,) = await eventually(found, what=f"the email to {address}")
    return mail


def action_links(mail: Any) -> dict[str, str]:
    text = mail.get_body(preferencelist=("plain",)).get_content()
    found = re.findall(r"(Approve|Reject) \(opens a confirmation page\):\r?\n(\S+)", text)
    return {verb.lower(): url for verb, url in found}


def block_texts(blocks: list[dict[str, Any]]) -> list[str]:
    found: list[str] = []
    for block in blocks:
        for part in [block.get("text"), *block.get("fields", []), *block.get("elements", [])]:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                found.append(part["text"])
    return found


def slack_signed(
    body: bytes, *, secret: str = SLACK_SECRET, at: int | None = None
) -> dict[str, str]:
    timestamp = str(at if at is not None else int(time.time()))
    base = b"v0:" + timestamp.encode() + b":" + body
    return {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest(),
    }


def interaction(cid: str, *, user: str, action: str, response_url: str) -> bytes:
    """A block_actions payload as Slack sends it when a button is clicked."""
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower()},
        "response_url": response_url,
        "message": {
            "ts": "1700000000.000100",
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": "Approval needed"}},
                {
                    "type": "actions",
                    "block_id": "hitl_decision",
                    "elements": [{"type": "button", "action_id": action, "value": cid}],
                },
            ],
        },
        "actions": [{"action_id": action, "block_id": "hitl_decision", "value": cid}],
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


# tests


async def test_a_pending_approval_reaches_slack_email_and_a_signed_webhook(
    cstack: Stack,
    llm: tuple[ScriptedLLM, str],
    slack: tuple[recorder.Recorder, str],
    hooks: tuple[recorder.Recorder, str],
    smtp: SmtpServer,
) -> None:
    _, cid = await start_transfer(cstack, llm[0], 500)

    async def slack_post() -> list[Any]:
        return [r for r in slack[0].at(POST, ok=True) if cid in r.body.decode()]

    (post,) = await eventually(slack_post, what="the Slack message")
    assert post.headers["authorization"] == "Bearer xoxb-test"
    message = post.json()
    assert message["channel"] == "C_REVIEW"
    text = "\n".join(block_texts(message["blocks"]))
    for expected in ("*Agent*\nbanking", "*Tool*\n`transfer`", "*Time left*\n30 minutes"):
        assert expected in text, expected
    assert re.search(r"\*Risk\*\n(medium|high|critical)", text)
    assert "*Reason*\n" in text
    arguments = next(
        b for b in message["blocks"] if "*Arguments*" in b.get("text", {}).get("text", "")
    )
    assert '"amount": 500' in arguments["text"]["text"]
    (actions,) = [b for b in message["blocks"] if b["type"] == "actions"]
    buttons = {e["action_id"]: e for e in actions["elements"]}
    assert buttons["hitl_approve"]["value"] == cid
    assert buttons["hitl_approve"]["style"] == "primary"
    assert buttons["hitl_reject"]["value"] == cid
    assert buttons["hitl_open"]["url"] == f"{cstack.url('approval')}/ui/approvals/{cid}"

    mail = await mail_for(smtp, "alice@example.com", cid)
    assert "transfer" in str(mail["Subject"])
    html = mail.get_body(preferencelist=("html",)).get_content()
    urls = action_links(mail)
    assert set(urls) == {"approve", "reject"}
    prefix = f"{cstack.url('approval')}/v1/integrations/email/action?token="
    assert all(u.startswith(prefix) for u in urls.values())
    assert urls["approve"] != urls["reject"]
    assert all(u.replace("&", "&amp;") in html for u in urls.values()), "the HTML has both links"

    async def hook() -> list[Any]:
        return [
            h
            for h in hooks[0].matching("correlation_id", cid)
            if h.json()["kind"] == "approval.requested"
        ]

    (received,) = await eventually(hook, what="the webhook")
    timestamp = received.headers["x-hitl-timestamp"]
    expected_signature = hmac.new(
        WEBHOOK_SECRET.encode(), timestamp.encode() + b"." + received.body, hashlib.sha256
    ).hexdigest()
    assert received.headers["x-hitl-signature"] == f"v1={expected_signature}"
    assert abs(time.time() - int(timestamp)) < 300
    body = received.json()
    assert body["tool"] == "transfer"
    assert body["arguments"]["amount"] == 500
    assert body["risk_level"] in {"medium", "high", "critical"}

    async with cstack.reviewer() as reviewer:
        await reviewer.post(f"/v1/approvals/{cid}/decision", json={"decision": "reject"})


async def test_email_link_confirmation_approves_once_and_the_agent_resumes(
    cstack: Stack, llm: tuple[ScriptedLLM, str], smtp: SmtpServer
) -> None:
    run_id, cid = await start_transfer(cstack, llm[0], 300)
    urls = action_links(await mail_for(smtp, "alice@example.com", cid))
    async with httpx.AsyncClient(timeout=30) as browser, cstack.agent() as agent:
        before = (await agent.get("/v1/accounts")).json()

        # A mail scanner (or the reviewer) opening the link decides nothing.
        page = await browser.get(urls["approve"])
        assert page.status_code == 200
        assert "Approve this action?" in page.text
        assert "Approve as alice" in page.text
        assert page.headers["referrer-policy"] == "no-referrer"
        assert (await status_of(cstack, cid))["status"] == "pending"

        token = re.search(r"name='token' value='([^']+)'", page.text)
        assert token is not None
        form = {"token": token.group(1), "comment": "ok by mail"}
        done = await browser.post(
            f"{cstack.url('approval')}/v1/integrations/email/action", data=form
        )
        assert done.status_code == 200, done.text
        assert "approved by alice via email" in done.text
        state = await status_of(cstack, cid)
        assert state["status"] == "approved"
        assert state["decision"]["reviewer"] == "alice"
        assert state["decision"]["channel"] == "email"
        assert state["decision"]["comment"] == "ok by mail"

        async def completed() -> bool:
            run = (await agent.get(f"/v1/runs/{run_id}")).json()
            return bool(run["status"] == "completed")

        await eventually(completed, timeout=60, what="the agent to resume and complete")
        after = (await agent.get("/v1/accounts")).json()
        assert after["alice"] == before["alice"] + 300

        again = await browser.post(
            f"{cstack.url('approval')}/v1/integrations/email/action", data=form
        )
        assert again.status_code in (409, 410)
        assert "already used" in again.text
        reopened = await browser.get(urls["approve"])
        assert reopened.status_code == 410
        assert "already used" in reopened.text
        other = await browser.get(urls["reject"])
        assert other.status_code == 409
        assert "already approved by alice via email" in other.text
        assert (await agent.get("/v1/accounts")).json() == after, "nothing ran twice"


async def test_tampered_and_expired_links_get_a_clear_page_and_change_nothing(
    infra: Infra, cstack: Stack
) -> None:
    cid = await pending_via_kafka(infra, cstack)
    url = f"{cstack.url('approval')}/v1/integrations/email/action"
    good = links.sign(
        LINK_SECRET,
        correlation_id=cid,
        action="approve",
        recipient="alice@example.com",
        expires_at=datetime.now(UTC) + timedelta(minutes=5),
    )
    version, body, mac = good.split(".")
    tampered = f"{version}.{body}.{mac[:-2]}{'AA' if mac[-2:] != 'AA' else 'BB'}"
    expired = links.sign(
        LINK_SECRET,
        correlation_id=cid,
        action="approve",
        recipient="alice@example.com",
        expires_at=datetime.now(UTC) - timedelta(seconds=1),
    )
    forged = links.sign(
        "not-the-secret",
        correlation_id=cid,
        action="approve",
        recipient="alice@example.com",
        expires_at=datetime.now(UTC) + timedelta(minutes=5),
    )
    stranger = links.sign(
        LINK_SECRET,
        correlation_id=cid,
        action="approve",
        recipient="mallory@example.com",
        expires_at=datetime.now(UTC) + timedelta(minutes=5),
    )
    async with httpx.AsyncClient(timeout=30) as browser:
        for token, status, phrase in [
            (tampered, 400, "signature does not match"),
            (forged, 400, "signature does not match"),
            ("garbage", 400, "not a valid hitl link"),
            (expired, 410, "expired"),
            (stranger, 403, "not registered as a hitl reviewer"),
        ]:
            shown = await browser.get(url, params={"token": token})
            assert shown.status_code == status, (token, shown.text)
            assert phrase in shown.text
            posted = await browser.post(url, data={"token": token})
            assert posted.status_code == status, (token, posted.text)
            assert phrase in posted.text
    assert (await status_of(cstack, cid))["status"] == "pending"


async def test_a_signed_slack_click_approves_and_updates_the_message(
    infra: Infra, cstack: Stack, slack: tuple[recorder.Recorder, str]
) -> None:
    cid = await pending_via_kafka(infra, cstack)
    response_path = f"/response/{cid}"
    body = interaction(
        cid, user="U_ALICE", action="hitl_approve", response_url=slack[1] + response_path
    )
    async with httpx.AsyncClient(base_url=cstack.url("approval"), timeout=30) as client:
        answer = await client.post(
            "/v1/integrations/slack/interactions", content=body, headers=slack_signed(body)
        )
    assert answer.status_code == 200, answer.text
    state = await status_of(cstack, cid)
    assert state["status"] == "approved"
    assert state["decision"]["reviewer"] == "alice"
    assert state["decision"]["channel"] == "slack"

    async def replaced() -> list[Any]:
        return slack[0].at(response_path)

    (update,) = await eventually(replaced, what="the message update through response_url")
    message = update.json()
    assert message["replace_original"] is True
    assert "approved by alice via slack" in message["text"]
    assert not [b for b in message["blocks"] if b["type"] == "actions"], "buttons removed"
    assert message["blocks"][0]["type"] == "header", "the original content stays"

    async def chat_updated() -> list[Any]:
        return [r for r in slack[0].at(UPDATE, ok=True) if cid in r.body.decode()]

    (chat_update,) = await eventually(chat_updated, what="the notifier's chat.update")
    assert "Approved by alice via slack" in chat_update.body.decode()


async def test_wrongly_signed_replayed_or_unknown_slack_clicks_change_nothing(
    infra: Infra, cstack: Stack, slack: tuple[recorder.Recorder, str]
) -> None:
    cid = await pending_via_kafka(infra, cstack)
    path = "/v1/integrations/slack/interactions"
    response_path = f"/response/{cid}"
    body = interaction(
        cid, user="U_ALICE", action="hitl_approve", response_url=slack[1] + response_path
    )
    async with httpx.AsyncClient(base_url=cstack.url("approval"), timeout=30) as client:
        wrong = await client.post(path, content=body, headers=slack_signed(body, secret="nope"))
        assert wrong.status_code == 401
        assert "signature" in wrong.json()["detail"]

        replayed = await client.post(
            path, content=body, headers=slack_signed(body, at=int(time.time()) - 600)
        )
        assert replayed.status_code == 401
        assert "replay" in replayed.json()["detail"]

        altered = body.replace(b"hitl_approve", b"hitl_reject")
        swapped = await client.post(path, content=altered, headers=slack_signed(body))
        assert swapped.status_code == 401

        unsigned = await client.post(path, content=body)
        assert unsigned.status_code == 401

        stranger = interaction(
            cid, user="U_MALLORY", action="hitl_approve", response_url=slack[1] + response_path
        )
        unknown = await client.post(path, content=stranger, headers=slack_signed(stranger))
        assert unknown.status_code == 200, "Slack gets its 200; the user gets an explanation"

    (note,) = await eventually(
        lambda: _now(slack[0].at(response_path)), what="the ephemeral explanation"
    )
    assert note.json()["response_type"] == "ephemeral"
    assert "not a hitl reviewer" in note.json()["text"]
    assert (await status_of(cstack, cid))["status"] == "pending"


async def _now(value: Any) -> Any:
    return value
