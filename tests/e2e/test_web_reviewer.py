"""The reviewer web page in a real headless Chromium (Debian's), against the real stack.

Playwright drives the system browser (`/usr/bin/chromium`, or HITL_CHROMIUM); no
browser is ever downloaded. `HITL_UPDATE_SCREENSHOTS=1` refreshes docs/web-queue.png.
"""

import contextlib
import os
import re
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from hitl_contracts import ApprovalRequested, RequestContext, RiskLevel
from hitl_shared.topics import Topics
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from tests.support.fake_openai import Call, Say, ScriptedLLM
from tests.support.infra import Infra
from tests.support.stack import DEV_TOKEN, Stack, approvals_of
from tests.support.wait import eventually

CHROMIUM = os.environ.get("HITL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DOCS = Path(__file__).resolve().parents[2] / "docs"
LIVE_TIMEOUT_MS = 30_000


@pytest.fixture(scope="module")
def chromium() -> str:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"no Chromium at {CHROMIUM}: run deploy/test.sh (it installs Debian's chromium) "
            "or `apt-get install chromium`",
            pytrace=False,
        )
    return CHROMIUM


@pytest.fixture(scope="module")
async def browser(chromium: str) -> AsyncIterator[Browser]:
    async with async_playwright() as p:
        launched = await p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield launched
        await launched.close()


async def screenshot(page: Page, name: str) -> None:
    """Refresh the README's pictures when asked (HITL_UPDATE_SCREENSHOTS=1)."""
    shot = await page.screenshot(full_page=True)
    if os.environ.get("HITL_UPDATE_SCREENSHOTS") == "1":
        DOCS.mkdir(exist_ok=True)
        (DOCS / name).write_bytes(shot)


async def signed_in(browser: Browser, stack: Stack, **options: Any) -> tuple[BrowserContext, Page]:
    context = await browser.new_context(viewport={"width": 1280, "height": 860}, **options)
    context.set_default_timeout(LIVE_TIMEOUT_MS)
    page = await context.new_page()
    await page.goto(stack.url("approval") + "/ui")
    assert "/ui/login" in page.url, "an anonymous visitor is sent to sign in"
    await page.get_by_label("Reviewer token").fill(DEV_TOKEN)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_text("Signed in as")).to_be_visible()
    return context, page


def tag() -> str:
    return f"[{uuid.uuid4().hex[:8]}]"


async def submit_transfer(stack: Stack, llm: ScriptedLLM, text: str, amount: float) -> str:
    marker = text.rsplit(" ", 1)[-1]
    llm.script(
        marker,
        [Call("transfer", {"to_account": "alice", "amount": amount})],
        Say("Final: {tool_results}"),
    )
    async with stack.agent() as agent:
        response = await agent.post("/v1/runs", json={"input": text, "agent": "banking"})
        assert response.status_code == 202, response.text
        run_id: str = response.json()["run_id"]
        return run_id


async def request_directly(
    stack: Stack,
    infra: Infra,
    *,
    agent: str,
    tool: str,
    arguments: dict[str, Any],
    risk: RiskLevel,
    user_request: str,
    reasoning: str = "",
    minutes: float = 30,
    **context: Any,
) -> str:
    """Publish `approval.requested` as a third-party agent would (no run behind it)."""
    now = datetime.now(UTC)
    event = ApprovalRequested(
        correlation_id=str(uuid.uuid4()),
        run_id=str(uuid.uuid4()),
        agent=agent,
        tool=tool,
        arguments=arguments,
        reason=f"{tool} always requires approval",
        risk_level=risk,
        context=RequestContext(user_request=user_request, agent_reasoning=reasoning, **context),
        requested_at=now,
        expires_at=now + timedelta(minutes=minutes),
    )
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(
            Topics(stack.prefix).approval_requested,
            event.model_dump_json().encode(),
            key=event.run_id.encode(),
        )
    finally:
        await producer.stop()
    return event.correlation_id


async def pending_id(stack: Stack, run_id: str) -> str:
    async with stack.reviewer() as reviewer:

        async def probe() -> list[Any]:
            return await approvals_of(reviewer, run_id, "pending")

        (approval,) = await eventually(probe, timeout=60, what="the pending approval")
        return str(approval["correlation_id"])


async def balances(stack: Stack) -> dict[str, float]:
    async with stack.agent() as agent:
        response = await agent.get("/v1/accounts")
        response.raise_for_status()
        result: dict[str, float] = response.json()
        return result


async def test_reviewer_sees_a_new_approval_live_modifies_and_approves_it(
    stack: Stack, infra: Infra, llm: tuple[ScriptedLLM, str], browser: Browser
) -> None:
    context, page = await signed_in(browser, stack)
    await expect(page.get_by_role("heading", name="Waiting for a decision")).to_be_visible()
    # Marks this document: if the page reloaded instead of updating live, the mark is gone.
    await page.evaluate("window.__stayedOnPage = true")

    before = await balances(stack)
    text = f"Transfer 500 to Alice {tag()}"
    run_id = await submit_transfer(stack, llm[0], text, 500)
    row = page.locator("tr.row", has_text=text)
    await expect(row).to_be_visible()
    assert await page.evaluate("window.__stayedOnPage === true"), "the row arrived live"
    await expect(row.locator(".badge")).to_have_text("high")
    await expect(row).to_contain_text("amount=500")

    # A couple more requests from other agents, for the queue's screenshot.
    await request_directly(
        stack,
        infra,
        agent="files",
        tool="delete_files",
        arguments={"pattern": "*.log", "older_than_days": 7},
        risk=RiskLevel.CRITICAL,
        user_request="Delete all log files older than 7 days",
        reasoning="Nine log files match; deleting them frees 2.1 GB.",
        minutes=4,
        affected_files=["logs/app-2024-05-01.log", "logs/app-2024-05-02.log"],
    )
    await request_directly(
        stack,
        infra,
        agent="crm",
        tool="send_email",
        arguments={"to": "client@example.com", "subject": "Your renewal"},
        risk=RiskLevel.MEDIUM,
        user_request="Tell ACME their contract renews next month",
        minutes=240,
    )
    await expect(page.locator("tr.row")).to_have_count(3)
    await expect(page.locator("#queue-count")).to_have_text("3")
    await screenshot(page, "web-queue.png")
    await page.set_viewport_size({"width": 390, "height": 844})
    await screenshot(page, "web-queue-phone.png")
    await page.set_viewport_size({"width": 1280, "height": 860})

    cid = await pending_id(stack, run_id)
    await row.get_by_role("link", name="transfer").click()
    await expect(page.locator("h1")).to_contain_text("transfer")
    await expect(page.locator("blockquote.user-request")).to_have_text(text)
    await expect(page.locator("#status")).to_have_text("pending")
    await screenshot(page, "web-detail.png")

    # A second reviewer has the same approval open in a browser without live updates.
    other_context, other = await signed_in(browser, stack, java_script_enabled=False)
    await other.goto(page.url)

    amount = page.get_by_label("Amount")
    await expect(amount).to_have_value("500")
    # The form's own limits (min 0.01) stop "-5" in the browser; a raise passes them
    # and the tool's edit policy refuses it on the server, with the reason.
    await amount.fill("5000")
    await page.get_by_role("button", name="Approve with changes").click()
    await expect(page.locator("#error")).to_contain_text("lowered but not raised")
    async with stack.reviewer() as reviewer:
        still = (await reviewer.get(f"/v1/approvals/{cid}")).json()
        assert still["status"] == "pending", "a widening edit records nothing"

    await page.get_by_label("Amount").fill("80")
    await page.get_by_label("Comment").fill("Capped at 80 until Alice is verified")
    await page.get_by_role("button", name="Approve with changes").click()
    await expect(page.locator(".banner.done")).to_contain_text("Modified: transfer")
    await expect(page.locator("tr.row", has_text=text)).to_have_count(0)
    await expect(page.locator("tr.row")).to_have_count(2)

    async def moved() -> dict[str, float] | None:
        now = await balances(stack)
        return now if now["alice"] == before["alice"] + 80 else None

    after = await eventually(moved, timeout=60, what="the edited transfer of 80")
    assert after["checking"] == before["checking"] - 80

    # The stale page's reviewer rejects too late: the page explains, the agent is untouched.
    await other.get_by_label("Comment").fill("Not without a call to Alice")
    await other.get_by_role("button", name="Reject").click()
    conflict = other.locator("#conflict")
    await expect(conflict).to_be_visible()
    await expect(conflict).to_contain_text("Your decision was not recorded")
    await expect(conflict).to_contain_text("already modified by dev via web")
    await expect(conflict).to_contain_text("Capped at 80")
    assert "Traceback" not in await other.content()
    assert await balances(stack) == after

    await page.goto(f"{stack.url('approval')}/ui/approvals/{cid}")
    history = page.locator("#history li")
    await expect(history.first).to_contain_text("requested by banking")
    await expect(history.filter(has_text="modified by dev via web")).to_have_count(1)
    await expect(page.locator("#decision")).to_contain_text("80")
    await other_context.close()
    await context.close()


async def test_a_decision_made_elsewhere_shows_up_on_an_open_page(
    stack: Stack, infra: Infra, browser: Browser
) -> None:
    cid = await request_directly(
        stack,
        infra,
        agent="crm",
        tool="send_email",
        arguments={"to": "ceo@example.com", "subject": "Quarterly numbers"},
        risk=RiskLevel.HIGH,
        user_request="Send the CEO the quarterly numbers",
    )
    context, page = await signed_in(browser, stack)
    await page.goto(f"{stack.url('approval')}/ui")
    # Keyboard only: the first Tab offers the skip link, and a row's link opens with Enter.
    await page.keyboard.press("Tab")
    await expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    await page.locator(f"tr[data-id='{cid}'] a").focus()
    await page.keyboard.press("Enter")
    await expect(page.locator("h1")).to_contain_text("send_email")
    await expect(page.get_by_role("button", name="Approve as proposed")).to_be_enabled()

    async with stack.reviewer() as reviewer:
        response = await reviewer.post(
            f"/v1/approvals/{cid}/decision",
            json={"decision": "reject", "comment": "Numbers are not final"},
        )
        assert response.status_code == 200, response.text

    banner = page.locator("#live-banner")
    await expect(banner).to_contain_text("Decided elsewhere")
    await expect(banner).to_contain_text("Rejected by dev via api")
    await expect(banner).to_contain_text("Numbers are not final")
    await expect(page.get_by_role("button", name="Approve as proposed")).to_be_disabled()
    await expect(page.locator("#status")).to_have_text("rejected")
    await expect(page.locator("#history li", has_text="rejected by dev via api")).to_have_count(1)
    await context.close()


@contextlib.asynccontextmanager
async def web_session(stack: Stack) -> AsyncIterator[httpx.AsyncClient]:
    """A signed-in web session over plain HTTP, for what needs no browser."""
    async with httpx.AsyncClient(base_url=stack.url("approval"), timeout=30) as client:
        form = await client.get("/ui/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf, form.text
        signed = await client.post("/ui/login", data={"token": DEV_TOKEN, "csrf": csrf.group(1)})
        assert signed.status_code == 303
        yield client


def ids(html: str) -> list[str]:
    return re.findall(r'data-id="([^"]+)"', html)


async def test_queue_filters_by_agent_and_risk_and_orders_by_urgency(
    stack: Stack, infra: Infra
) -> None:
    agent = f"ops-{uuid.uuid4().hex[:6]}"
    soon = await request_directly(
        stack, infra, agent=agent, tool="restart", arguments={"host": "db-1"},
        risk=RiskLevel.CRITICAL, user_request="Restart db-1", minutes=3,
    )  # fmt: skip
    later = await request_directly(
        stack, infra, agent=agent, tool="restart", arguments={"host": "web-1"},
        risk=RiskLevel.LOW, user_request="Restart web-1", minutes=90,
    )  # fmt: skip
    async with web_session(stack) as web:

        async def both_listed() -> list[str] | None:
            listed = ids((await web.get("/ui", params={"agent": agent})).text)
            return listed if len(listed) == 2 else None

        newest = await eventually(both_listed, what="both approvals in the queue")
        assert newest == [later, soon], "newest first by default"
        urgent = ids((await web.get("/ui", params={"agent": agent, "sort": "urgent"})).text)
        assert urgent == [soon, later], "most urgent first: soonest expiry on top"
        critical = ids((await web.get("/ui", params={"agent": agent, "risk": "critical"})).text)
        assert critical == [soon]
        page = await web.get("/ui", params={"agent": agent, "status": "approved"})
        assert ids(page.text) == []
        assert "Nothing here" in page.text


async def test_sign_in_cookie_and_csrf_protect_the_page(stack: Stack, infra: Infra) -> None:
    cid = await request_directly(
        stack, infra, agent="crm", tool="send_email", arguments={"to": "x@example.com"},
        risk=RiskLevel.LOW, user_request="Email x",
    )  # fmt: skip
    async with httpx.AsyncClient(base_url=stack.url("approval"), timeout=30) as anonymous:
        redirect = await anonymous.get(f"/ui/approvals/{cid}")
        assert redirect.status_code == 303
        assert redirect.headers["location"] == f"/ui/login?next=%2Fui%2Fapprovals%2F{cid}"
        form = await anonymous.get("/ui/login")
        csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert csrf
        wrong = await anonymous.post("/ui/login", data={"token": "guess", "csrf": csrf.group(1)})
        assert wrong.status_code == 401
        assert "not a known reviewer token" in wrong.text
        forged = await anonymous.post("/ui/login", data={"token": DEV_TOKEN, "csrf": "forged"})
        assert forged.status_code == 403
        good = await anonymous.post("/ui/login", data={"token": DEV_TOKEN, "csrf": csrf.group(1)})
        assert good.status_code == 303
        cookie = next(
            c for c in good.headers.get_list("set-cookie") if c.startswith("hitl_session=")
        )
        for attribute in ("HttpOnly", "SameSite=strict", "Path=/ui"):
            assert attribute.lower() in cookie.lower(), cookie
        assert "default-src 'self'" in form.headers["content-security-policy"]

    async with web_session(stack) as web:
        refused = await web.post(
            f"/ui/approvals/{cid}/decision", data={"action": "approve", "csrf": "stolen"}
        )
        assert refused.status_code == 403
        assert "nothing was recorded" in refused.text
        missing = await web.get("/ui/approvals/does-not-exist")
        assert missing.status_code == 404
        assert "No such approval" in missing.text
    async with stack.reviewer() as reviewer:
        assert (await reviewer.get(f"/v1/approvals/{cid}")).json()["status"] == "pending"
