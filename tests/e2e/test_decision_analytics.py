"""Decision analytics, what-if and shadow mode end to end, against figures computed here.

A history of decisions is seeded through the real path (approval.requested on Kafka,
decisions over REST by several reviewers, expiries by the service's sweeper, runs of
the banking agent with two shadow candidates). Every figure the service reports is
then recomputed in this file from the approvals API (each approval's requested_at,
decided_at, outcome, reviewer, comment, arguments) with its own arithmetic.
"""

import json
import math
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from hitl_contracts import ApprovalRequested, RequestContext, RiskLevel
from hitl_shared.directory import hash_token
from hitl_shared.topics import Topics
from playwright.async_api import Browser, expect

# The real-Chromium fixtures of the reviewer page's tests.
from tests.e2e.test_web_reviewer import browser, chromium, screenshot, signed_in  # noqa: F401
from tests.support import fake_openai
from tests.support.fake_openai import Call, Say
from tests.support.infra import Infra
from tests.support.stack import Stack, approvals_of
from tests.support.wait import eventually

ANN, BOB, QUICK = "ann-token-7c1", "bob-token-19e", "quick-token-a02"
REVIEWERS = [
    {"name": "ann", "token_sha256": hash_token(ANN), "roles": ["reviewer"]},
    {"name": "bob", "token_sha256": hash_token(BOB), "roles": ["reviewer"]},
    {"name": "quick", "token_sha256": hash_token(QUICK), "roles": ["reviewer"]},
]
OUTCOMES = ["approved", "modified", "rejected", "expired", "cancelled"]
HUMAN = ("approved", "modified", "rejected")


def over(amount: float) -> dict[str, Any]:
    return {"require_approval_when": [{"field": "amount", "op": "gt", "value": amount}]}


POLICIES = {
    "banking": {
        "shadow": [
            {"name": "t250", "tools": {"transfer": over(250)}},
            {"name": "t30", "tools": {"transfer": over(30)}},
        ]
    }
}


@pytest.fixture(scope="module")
def stack(
    infra: Infra,
    llm: tuple[fake_openai.ScriptedLLM, str],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Stack]:
    logs = tmp_path_factory.mktemp("analytics-logs")
    policies = logs / "policies.json"
    policies.write_text(json.dumps(POLICIES))
    s = Stack(
        infra,
        logs,
        env_extra={
            "OPENAI_API_KEY": "test-key",
            "OPENAI_BASE_URL": llm[1] + "/v1",
            "OPENAI_MODEL": "scripted",
            "APPROVAL_REVIEWERS": json.dumps(REVIEWERS),
            "APPROVAL_SHADOW_FEED": "true",
            "APPROVAL_EXPECTED_WAIT_REFRESH_SECONDS": "1",
            "AGENT_POLICIES_FILE": str(policies),
        },
    )
    try:
        # Generous: the machine is shared; these are deadlines, not sleeps.
        s.start("approval", timeout=180)
        s.start("agent", timeout=180)
        yield s
    finally:
        s.close()


@dataclass
class Seed:
    agent: str
    tool: str
    risk: RiskLevel
    arguments: dict[str, Any]
    token: str = ""  # who decides; "" lets it expire
    verb: str = "approve"
    comment: str = ""
    edited: dict[str, Any] | None = None
    age_seconds: float = 0.0
    expires_in: float = 1800.0


def seeds() -> list[Seed]:
    pay, refund = ("payments", "transfer"), ("payments", "refund")
    high, medium = RiskLevel.HIGH, RiskLevel.MEDIUM
    transfers = [
        Seed(*pay, high, {"amount": 100}, ANN, age_seconds=600),
        Seed(*pay, high, {"amount": 200}, ANN, age_seconds=900),
        Seed(*pay, high, {"amount": 300}, ANN, "modify", edited={"amount": 150}, age_seconds=60),
        Seed(*pay, high, {"amount": 5000}, ANN, "reject", "not a known payee", age_seconds=30),
        Seed(*pay, high, {"amount": 240}, ANN, "reject", " not a  known payee", age_seconds=45),
        Seed(*pay, high, {"amount": 90}, ANN, "reject", "Too large for a Friday", age_seconds=7),
        Seed(*pay, high, {"amount": 1200}, BOB, age_seconds=3600),
        Seed(*pay, high, {"amount": 260}, age_seconds=5, expires_in=3),
        Seed(*pay, high, {"amount": 20}, age_seconds=5, expires_in=3),
    ]
    refunds = [Seed(*refund, medium, {"amount": 10 * i}, BOB, age_seconds=120) for i in (1, 2, 3)]
    refunds.append(Seed(*refund, medium, {"amount": 40}, BOB, "reject", "duplicate refund"))
    return transfers + refunds


async def publish(producer: AIOKafkaProducer, stack: Stack, seed: Seed) -> str:
    now = datetime.now(UTC)
    event = ApprovalRequested(
        correlation_id=str(uuid.uuid4()),
        run_id=str(uuid.uuid4()),
        tool_call_id=f"call_{uuid.uuid4().hex[:8]}",
        agent=seed.agent,
        tool=seed.tool,
        arguments=seed.arguments,
        reason="seeded",
        risk_level=seed.risk,
        context=RequestContext(user_request="seeded history"),
        requested_at=now - timedelta(seconds=seed.age_seconds),
        expires_at=now + timedelta(seconds=seed.expires_in),
    )
    await producer.send_and_wait(
        Topics(stack.prefix).approval_requested,
        event.model_dump_json().encode(),
        key=event.run_id.encode(),
    )
    return event.correlation_id


async def stored(client: httpx.AsyncClient, cid: str) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        response = await client.get(f"/v1/approvals/{cid}")
        return response.json() if response.status_code == 200 else None

    return await eventually(probe, timeout=60, what=f"approval {cid} stored")


async def decide(stack: Stack, cid: str, seed: Seed) -> None:
    body: dict[str, Any] = {"decision": seed.verb, "comment": seed.comment}
    if seed.edited is not None:
        body["arguments"] = seed.edited
    async with stack.reviewer(seed.token) as reviewer:
        response = await reviewer.post(f"/v1/approvals/{cid}/decision", json=body)
        assert response.status_code == 200, response.text


async def run_transfer(stack: Stack, llm: fake_openai.ScriptedLLM, amount: float) -> str:
    marker = f"[{uuid.uuid4().hex[:8]}]"
    llm.script(
        marker,
        [Call("transfer", {"to_account": "alice", "amount": amount})],
        Say("Final: {tool_results}"),
    )
    async with stack.agent() as agent:
        response = await agent.post(
            "/v1/runs", json={"input": f"Transfer {amount} to Alice {marker}", "agent": "banking"}
        )
        assert response.status_code == 202, response.text
        run_id: str = response.json()["run_id"]
        return run_id


@dataclass(frozen=True)
class Truth:
    """One ended approval as the approvals API tells it."""

    agent: str
    tool: str
    risk: str
    reviewer: str
    outcome: str
    seconds: float
    comment: str
    arguments: dict[str, Any]
    run_id: str
    tool_call_id: str


def truth_of(view: dict[str, Any]) -> Truth:
    request, decision = view["request"], view["decision"]
    outcome = decision["decision"]
    requested = datetime.fromisoformat(request["requested_at"])
    decided = datetime.fromisoformat(decision["decided_at"])
    human = outcome in HUMAN
    return Truth(
        agent=request["agent"],
        tool=request["tool"],
        risk=request["risk_level"],
        reviewer=decision["reviewer"] if human else "",
        outcome=outcome,
        seconds=round(max((decided - requested).total_seconds(), 0.0), 3),
        comment=" ".join(decision["comment"].split())[:200] if human else "",
        arguments=request["arguments"],
        run_id=request["run_id"],
        tool_call_id=request["tool_call_id"],
    )


@dataclass
class History:
    truths: list[Truth]
    shadow_run_ids: dict[int, str]
    pending_cid: str


@pytest.fixture(scope="module")
async def history(stack: Stack, infra: Infra, llm: tuple[Any, str]) -> History:
    plan = seeds()
    ids: list[str] = []
    producer = AIOKafkaProducer(bootstrap_servers=infra.kafka_bootstrap_servers)
    await producer.start()
    try:
        async with stack.reviewer() as dev:
            for seed in plan:
                ids.append(await publish(producer, stack, seed))
            for cid, seed in zip(ids, plan, strict=True):
                await stored(dev, cid)
                if seed.token:
                    await decide(stack, cid, seed)
            # The fast approver: each request decided as soon as it shows up.
            for _ in range(20):
                seed = Seed("crm", "send_email", RiskLevel.LOW, {"to": "a@example.com"}, QUICK)
                cid = await publish(producer, stack, seed)
                await stored(dev, cid)
                await decide(stack, cid, seed)
                ids.append(cid)
            # Banking runs under two shadow candidates: 50 runs without approval (live
            # threshold 100), 150 is asked for and rejected.
            runs = {amount: await run_transfer(stack, llm[0], amount) for amount in (50, 150)}
            (asked,) = await eventually(
                lambda: approvals_of(dev, runs[150], "pending"), timeout=60, what="the ask"
            )
            response = await dev.post(
                f"/v1/approvals/{asked['correlation_id']}/decision",
                json={"decision": "reject", "comment": "not now"},
            )
            assert response.status_code == 200, response.text
            ids.append(asked["correlation_id"])
            pending = await publish(
                producer, stack, Seed("payments", "transfer", RiskLevel.HIGH, {"amount": 1})
            )

            async def all_ended() -> list[dict[str, Any]] | None:
                views = [(await dev.get(f"/v1/approvals/{cid}")).json() for cid in ids]
                return views if all(v["status"] != "pending" for v in views) else None

            views = await eventually(all_ended, timeout=60, what="every seeded approval ended")
    finally:
        await producer.stop()
    return History([truth_of(v) for v in views], runs, pending)


# Independent arithmetic.


def nearest_rank(values: list[float], p: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = max(math.ceil(p / 100 * len(ordered)), 1)
    return ordered[rank - 1]


def expected_group(truths: list[Truth]) -> dict[str, Any]:
    counts = Counter(t.outcome for t in truths)
    human = sum(counts[o] for o in HUMAN)
    seconds = [t.seconds for t in truths if t.outcome in HUMAN]
    comments = Counter(t.comment for t in truths if t.outcome == "rejected" and t.comment)
    return {
        "total": len(truths),
        "counts": {o: counts[o] for o in OUTCOMES},
        "approval_rate": round((counts["approved"] + counts["modified"]) / human, 4)
        if human
        else None,
        "modification_rate": round(counts["modified"] / human, 4) if human else None,
        "expiry_rate": round(counts["expired"] / len(truths), 4),
        "time_to_decision": {
            "decisions": len(seconds),
            "p50_seconds": nearest_rank(seconds, 50),
            "p90_seconds": nearest_rank(seconds, 90),
        },
        "top_rejection_comments": [
            {"comment": c, "count": n}
            for c, n in sorted(comments.items(), key=lambda item: (-item[1], item[0]))[:5]
        ],
    }


def key_of(truth: Truth, group_by: str) -> str:
    return {
        "agent": truth.agent,
        "tool": f"{truth.agent}/{truth.tool}",
        "risk": truth.risk,
        "reviewer": truth.reviewer,
    }[group_by]


def window() -> dict[str, str]:
    now = datetime.now(UTC)
    return {
        "since": (now - timedelta(hours=3)).isoformat(),
        "until": (now + timedelta(hours=1)).isoformat(),
    }


async def report(stack: Stack, group_by: str, expected_total: int) -> dict[str, Any]:
    async with stack.reviewer() as dev:

        async def probe() -> dict[str, Any] | None:
            response = await dev.get("/v1/analytics", params={"group_by": group_by, **window()})
            assert response.status_code == 200, response.text
            body: dict[str, Any] = response.json()
            # The rollup is written a second after each decision.
            return body if body["overall"]["total"] == expected_total else None

        return await eventually(probe, timeout=60, what="every decision in the rollup")


@pytest.mark.parametrize("group_by", ["agent", "tool", "risk", "reviewer"])
async def test_the_report_equals_figures_computed_from_each_approval(
    stack: Stack, history: History, group_by: str
) -> None:
    body = await report(stack, group_by, len(history.truths))
    got = {
        g["value"]: {k: v for k, v in g.items() if k not in ("value", "fatigue")}
        for g in body["groups"]
    }
    want: dict[str, list[Truth]] = {}
    for truth in history.truths:
        want.setdefault(key_of(truth, group_by), []).append(truth)
    assert got == {value: expected_group(truths) for value, truths in want.items()}
    assert {
        k: v for k, v in body["overall"].items() if k not in ("value", "fatigue")
    } == expected_group(history.truths)
    if group_by == "reviewer":
        # Twenty approvals as asked, each within seconds: the one flagged for fatigue.
        assert body["fatigued_reviewers"] == ["quick"]


async def test_figures_per_reviewer_are_for_admins(stack: Stack, history: History) -> None:
    async with stack.reviewer(ANN) as ann:
        mine = await ann.get("/v1/analytics", params={"group_by": "reviewer"})
        assert mine.status_code == 403
        assert (await ann.get("/v1/analytics", params={"group_by": "tool"})).status_code == 200
        # A caller's regular expression is not run over the history (it could hang it).
        pattern = {"field": "to", "op": "matches", "value": "(a+)+$"}
        candidate = {"tools": {"send_email": {"require_approval_when": [pattern]}}}
        replay = await ann.post("/v1/analytics/what-if", json={"candidate": candidate})
        assert replay.status_code == 422, replay.text
        assert "matches" in replay.text
    async with httpx.AsyncClient(base_url=stack.url("approval")) as anonymous:
        assert (await anonymous.get("/v1/analytics")).status_code == 401


async def test_a_pending_approval_shows_the_expected_wait_from_recent_history(
    stack: Stack, history: History
) -> None:
    seconds = [
        t.seconds
        for t in history.truths
        if (t.agent, t.tool) == ("payments", "transfer") and t.outcome in HUMAN
    ]
    want = {
        "p50_seconds": nearest_rank(seconds, 50),
        "p90_seconds": nearest_rank(seconds, 90),
        "decisions": len(seconds),
        "basis": "tool",
    }
    async with stack.reviewer() as dev:

        async def probe() -> dict[str, Any] | None:
            view = (await dev.get(f"/v1/approvals/{history.pending_cid}")).json()
            return view if view.get("expected_wait") == want else None

        view = await eventually(probe, timeout=60, what="the expected wait from history")
        assert view["status"] == "pending"
        page = (await dev.get("/v1/approvals", params={"status": "pending"})).json()
        (listed,) = [i for i in page["items"] if i["correlation_id"] == history.pending_cid]
        assert listed["expected_wait"] == want


async def test_what_if_equals_a_replay_of_the_candidate_over_the_history(
    stack: Stack, history: History
) -> None:
    await report(stack, "agent", len(history.truths))
    candidate = {"name": "t250", "agent": "payments", "tools": {"transfer": over(250)}}
    async with stack.reviewer() as dev:
        response = await dev.post(
            "/v1/analytics/what-if",
            json={"candidate": candidate, **window(), "review_cap_seconds": 300},
        )
    assert response.status_code == 200, response.text
    got = response.json()
    covered = [t for t in history.truths if (t.agent, t.tool) == ("payments", "transfer")]
    through = [t for t in covered if not t.arguments["amount"] > 250]
    outcomes = Counter(t.outcome for t in through)
    saved = sum(min(t.seconds, 300) for t in through if t.outcome in HUMAN)
    assert got["history"] == {
        "asked": len(covered),
        "would_ask": len(covered) - len(through),
        "would_let_through": len(through),
        "let_through_by_outcome": {o: outcomes[o] for o in OUTCOMES},
        "let_through_rejected_or_modified": outcomes["rejected"] + outcomes["modified"],
        "reviewer_hours_saved": round(saved / 3600, 4),
    }
    # The seeded history has let-throughs a human rejected: the candidate is not free.
    assert got["history"]["let_through_rejected_or_modified"] == 2
    # No shadow records for the payments agent: nothing known about unasked calls.
    assert got["unasked"]["ran_without_approval"] == 0


async def test_shadow_mode_records_what_candidates_would_have_done(
    stack: Stack, history: History
) -> None:
    rejected = next(t for t in history.truths if t.run_id == history.shadow_run_ids[150])
    assert rejected.outcome == "rejected"
    async with stack.reviewer() as dev:

        async def shadow(name: str) -> dict[str, Any] | None:
            response = await dev.get(f"/v1/analytics/shadow/{name}", params=window())
            assert response.status_code == 200, response.text
            body: dict[str, Any] = response.json()
            return body if body["calls"] == 2 and body["live_asked_not_yet_decided"] == 0 else None

        raised = await eventually(lambda: shadow("t250"), timeout=60, what="t250's records")
        # 50 ran, and would still run; 150 was asked for, and t250 would have let it through
        # although a human rejected it.
        assert (raised["neither_asks"], raised["only_live_asks"], raised["both_ask"]) == (1, 1, 0)
        assert raised["decided"]["let_through_by_outcome"]["rejected"] == 1
        assert raised["decided"]["reviewer_hours_saved"] == round(
            min(rejected.seconds, 300) / 3600, 4
        )
        lowered = await eventually(lambda: shadow("t30"), timeout=60, what="t30's records")
        assert (lowered["only_shadow_asks"], lowered["both_ask"]) == (1, 1)
        # An ad-hoc what-if reads the shadow records for calls that ran without approval.
        candidate = {"name": "t40", "agent": "banking", "tools": {"transfer": over(40)}}
        response = await dev.post(
            "/v1/analytics/what-if", json={"candidate": candidate, **window()}
        )
        got = response.json()
        assert got["unasked"]["ran_without_approval"] == 1, "one call, however many candidates"
        assert got["unasked"]["would_ask"] == 1
        assert got["history"]["asked"] == 1
        assert got["would_ask_total"] == 2
    # The run went on as the live policy said: 50 ran without approval.
    async with stack.agent() as agent:
        run = (await agent.get(f"/v1/runs/{history.shadow_run_ids[50]}")).json()
        assert run["status"] == "completed", run


async def test_a_window_far_from_now_is_refused_at_once(stack: Stack, history: History) -> None:
    """A reviewer's `until` in year 1 made the shadow report read every day up to now
    (minutes of store reads holding the service): refused with 422, quickly."""
    far = {"until": "0001-01-08T00:00:00Z"}
    async with stack.reviewer() as dev:
        started = time.monotonic()
        shadow = await dev.get("/v1/analytics/shadow/t250", params=far)
        report = await dev.get("/v1/analytics", params={"since": "9999-01-01T00:00:00Z"})
        replay = await dev.post(
            "/v1/analytics/what-if",
            json={"candidate": {"name": "x", "rules": []}, **far},
        )
        assert time.monotonic() - started < 10
    assert shadow.status_code == 422, shadow.text
    assert "within 400 days of now" in shadow.text
    assert report.status_code == 422, report.text
    assert replay.status_code == 422, replay.text


async def test_the_analytics_page_shows_the_figures_in_chromium(
    stack: Stack,
    history: History,
    browser: Browser,  # noqa: F811
) -> None:
    await report(stack, "agent", len(history.truths))
    context, page = await signed_in(browser, stack)
    try:
        await page.get_by_role("link", name="Analytics").click()
        await expect(page.get_by_role("heading", name="Decision analytics")).to_be_visible()
        await page.get_by_label("Per", exact=True).select_option("tool")
        await page.get_by_label("Window").select_option("24")
        await page.get_by_role("button", name="Show").click()
        await expect(page.locator("#overall-total")).to_have_text(str(len(history.truths)))
        transfers = [t for t in history.truths if (t.agent, t.tool) == ("payments", "transfer")]
        want = expected_group(transfers)
        row = page.locator("tr.group[data-value='payments/transfer']")
        await expect(row.locator("td").nth(1)).to_have_text(str(want["total"]))
        await expect(row.locator(".approval-rate")).to_have_text(
            f"{want['approval_rate'] * 100:.0f}%"
        )
        await expect(row).to_contain_text("“not a known payee” (2)")
        # Per reviewer (this reviewer is an admin): the fast approver is flagged.
        await page.get_by_label("Per", exact=True).select_option("reviewer")
        await page.get_by_role("button", name="Show").click()
        await expect(page.locator("#fatigue")).to_contain_text("quick")
        await expect(page.locator("tr.group.fatigue")).to_have_count(1)
        await expect(page.locator("tr.group.fatigue")).to_have_attribute("data-value", "quick")
        # The what-if form: transfer asks only above 250.
        await page.locator("#w-agent").fill("payments")
        await page.locator("#w-tool").fill("transfer")
        await page.locator("#w-field").fill("amount")
        await page.locator("#w-op").select_option("gt")
        await page.locator("#w-value").fill("250")
        await page.get_by_role("button", name="Replay").click()
        through = [t for t in transfers if not t.arguments["amount"] > 250]
        await expect(page.locator("#wi-asked")).to_have_text(str(len(transfers)))
        await expect(page.locator("#wi-would-ask")).to_have_text(str(len(transfers) - len(through)))
        rejected = sum(t.outcome == "rejected" for t in through)
        await expect(page.locator("#wi-through")).to_contain_text(
            f"{len(through)}, of which a human rejected {rejected}"
        )
        await screenshot(page, "web-analytics.png")
        # A pending approval shows how long a decision usually takes.
        await page.goto(f"{stack.url('approval')}/ui/approvals/{history.pending_cid}")
        await expect(page.locator(".expected-wait")).to_contain_text("usually decided within")
    finally:
        await context.close()
