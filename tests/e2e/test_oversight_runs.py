"""Supervising runs that are not paused, end to end: real Kafka, store, processes, openai.

A slow scripted model (each reply takes a while) gives a supervisor time to act
mid-run: interrupt a run (it pauses at its next step boundary with a `supervisor`
approval; the reviewer lets it go on with a note the model then receives, or stops
it), halt an agent whose runs are spread over two workers (they park; a new task
waits) and resume it, watch it all on the live stream, and read what runs cost.
"""

import asyncio
import contextlib
import json
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result
from hitl_cli.main import cli
from hitl_shared.directory import hash_token
from playwright.async_api import Browser, expect

from tests.e2e.test_web_reviewer import browser, chromium, screenshot, signed_in
from tests.support.agent_e2e import (
    AGENT_TOKENS,
    AUDITOR_TOKEN,
    CAROL_TOKEN,
    OPS_TOKEN,
    AgentProcess,
    agent_stack,
    marker,
    pending,
)
from tests.support.fake_openai import Call, Say, ScriptedLLM
from tests.support.infra import Infra
from tests.support.stack import DEV_AGENT_TOKEN, DEV_TOKEN, Stack
from tests.support.wait import eventually

ADMIN_TOKEN = "ada-admin-token"
# The reviewer web page's own token at the agent service: it acts for reviewers.
WEB_DELEGATE_TOKEN = "reviewer-web-delegate-token"
TOKENS = [
    *AGENT_TOKENS,
    {"name": "ada", "token_sha256": hash_token(ADMIN_TOKEN), "roles": ["admin"]},
    {
        "name": "reviewer-web",
        "token_sha256": hash_token(WEB_DELEGATE_TOKEN),
        "roles": ["read", "delegate"],
    },
    # The development reviewer `dev`, an operator here (not an admin); the token is
    # never used: the web page acts for `dev` by name.
    {"name": "dev", "token_sha256": hash_token("unused-dev-agent-token"), "roles": ["operate"]},
]
__all__ = ["browser", "chromium"]  # fixtures of the real-browser tests, used here too

PRICES = {
    "currency": "USD",
    "default": {"prompt_per_million": 1000.0, "completion_per_million": 2000.0},
}
# Each model reply takes this long: the window in which a supervisor acts.
SLOW = 0.8
STEPS = 8
# Browser assertions wait this long for the live page (a loaded machine is slow).
EXPECT_MS = 90_000
# The halt's runs: long enough to be running when the agent is halted.
LONG = 35


@pytest.fixture(scope="module")
def stack(
    infra: Infra, llm: tuple[ScriptedLLM, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    env = {
        "AGENT_TOKENS": json.dumps(TOKENS),
        "AGENT_PRICES": json.dumps(PRICES),
        "APPROVAL_AGENT_TOKEN": WEB_DELEGATE_TOKEN,
        # The halt's long tasks take more steps than the default loop guard allows.
        "AGENT_MAX_STEPS": "40",
    }
    workdir = tmp_path_factory.mktemp("oversight")
    # A loaded machine (shared CI) starts the services slowly: a deadline, not a sleep.
    with agent_stack(infra, llm[1], workdir, env=env, start_timeout=240) as s:
        yield s


def slow_task(llm: ScriptedLLM, tag: str, steps: int = STEPS) -> None:
    """A multi-step task: `steps` balance reads, then an answer quoting the last message."""
    turns: list[Any] = [[Call("get_balance", {"account": "checking"})] for _ in range(steps)]
    llm.script(tag, *turns, Say("Final: {last_message}"), tokens=(100, 10), delay=SLOW)


class RetryUnavailable(httpx.AsyncBaseTransport):
    """Retries a 503 as the API asks (the store is slow on a loaded machine), except a
    run submission, whose retry without an Idempotency-Key could start a second run."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        once = (
            request.method == "POST"
            and request.url.path == "/v1/runs"
            and "idempotency-key" not in request.headers
        )
        for _ in range(40):
            response = await self.inner.handle_async_request(request)
            if response.status_code != 503 or once:
                return response
            await response.aclose()
            await asyncio.sleep(0.5)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


async def submit(agent: httpx.AsyncClient, text: str) -> str:
    """Start a run; with an Idempotency-Key, so a 503 is retried without a second run."""
    response = await agent.post(
        "/v1/runs",
        json={"input": text, "agent": "banking"},
        headers={"Idempotency-Key": uuid.uuid4().hex},
    )
    assert response.status_code == 202, response.text
    run_id: str = response.json()["run_id"]
    return run_id


def client(stack: Stack, token: str = DEV_AGENT_TOKEN) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=stack.url("agent"),
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
        transport=RetryUnavailable(),
    )


class SlowAgentProcess(AgentProcess):
    STARTUP_SECONDS = 240.0


async def run_state(agent: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    """The run; a 503 (the store slow on a loaded machine) is "not yet", not a failure."""
    response = await agent.get(f"/v1/runs/{run_id}")
    assert response.status_code == 200, response.text
    state: dict[str, Any] = response.json()
    return state


async def wait_status(
    agent: httpx.AsyncClient, run_id: str, status: str, *, timeout: float = 180
) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        state = await run_state(agent, run_id)
        return state if state["status"] == status else None

    return await eventually(probe, timeout=timeout, what=f"run {run_id} to be {status}")


async def steps_of(agent: httpx.AsyncClient, run_id: str) -> int:
    steps: int = (await run_state(agent, run_id))["steps"]
    return steps


async def started_stepping(agent: httpx.AsyncClient, run_id: str) -> None:
    async def probe() -> bool:
        return await steps_of(agent, run_id) >= 1

    await eventually(probe, timeout=180, what=f"run {run_id} to take a step")


@contextlib.asynccontextmanager
async def live(client: httpx.AsyncClient, **params: str) -> AsyncIterator[list[dict[str, Any]]]:
    """Collect the live stream of every run's events in the background."""
    seen: list[dict[str, Any]] = []
    opened = asyncio.Event()

    async def read() -> None:
        async with client.stream("GET", "/v1/run-events", params=params, timeout=None) as r:
            assert r.status_code == 200, await r.aread()
            opened.set()
            event = ""
            async for line in r.aiter_lines():
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                elif line.startswith("data:") and event == "run":
                    seen.append(json.loads(line.split(":", 1)[1]))

    task = asyncio.create_task(read())
    await asyncio.wait_for(opened.wait(), 30)
    try:
        yield seen
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


def types_for(seen: list[dict[str, Any]], run_id: str) -> list[str]:
    return [e["type"] for e in seen if e["run_id"] == run_id]


@pytest.mark.timeout(900)
async def test_interrupt_pauses_at_the_boundary_and_goes_on_with_a_note(
    stack: Stack, llm: tuple[ScriptedLLM, str]
) -> None:
    tag = marker()
    slow_task(llm[0], tag)
    async with (
        client(stack) as agent,
        client(stack, OPS_TOKEN) as ops,
        client(stack, AUDITOR_TOKEN) as auditor,
        client(stack, CAROL_TOKEN) as carol,
        stack.reviewer() as reviewer,
        live(auditor, agent="banking") as everyone,
        live(carol) as own,
    ):
        run_id = await submit(agent, f"Check the balance a few times {tag}")
        await started_stepping(agent, run_id)
        response = await ops.post(f"/v1/runs/{run_id}/interrupt", json={"reason": "looks off"})
        assert response.status_code == 202, response.text
        assert response.json()["state"] == "requested"
        again = await ops.post(f"/v1/runs/{run_id}/interrupt", json={"reason": "twice"})
        assert again.status_code == 200, "a pending interrupt is not stored twice"

        paused = await wait_status(agent, run_id, "awaiting_approval")
        assert paused["steps"] < STEPS + 1, "it paused mid-run, not at the end"
        (approval,) = await pending(reviewer, run_id)
        request = approval["request"]
        assert request["context"]["kind"] == "supervisor"
        assert "ops interrupted this run: looks off" in request["arguments"]["reason"]
        state = (await ops.get(f"/v1/runs/{run_id}/interrupt")).json()
        assert state["state"] == "paused"
        assert state["correlation_id"] == approval["correlation_id"]
        # Paused means paused: no model call while the approval waits.
        calls = len(llm[0].calls_for(tag))
        await asyncio.sleep(2 * SLOW)
        assert len(llm[0].calls_for(tag)) == calls

        note = f"skip the rest, just answer {tag}"
        decided = await reviewer.post(
            f"/v1/approvals/{approval['correlation_id']}/decision",
            json={"decision": "approve", "comment": note},
        )
        assert decided.status_code == 200, decided.text
        done = await wait_status(agent, run_id, "completed", timeout=120)
        # The model received the note as the message after the pause.
        told = [
            m
            for body in llm[0].calls_for(tag)
            for m in body["messages"]
            if m["role"] == "user" and note in str(m["content"])
        ]
        assert told, "the model never saw the supervisor's note"
        assert "A human supervisor (dev) paused this run and says" in told[0]["content"]

        async def streamed() -> bool:
            return "completed" in types_for(everyone, run_id)

        await eventually(streamed, timeout=30, what="the live stream to show the run end")
        types = types_for(everyone, run_id)
        assert types.index("interrupted") < types.index("resumed") < types.index("completed")
        mine = next(e for e in everyone if e["run_id"] == run_id)
        assert mine["agent"] == "banking"
        assert mine["submitted_by"] == "developer"
        assert [e for e in own if e["run_id"] == run_id] == [], "carol sees only her runs"

        cost = (await agent.get(f"/v1/runs/{run_id}/cost")).json()
        assert cost["usage"] == done["usage"]
        expected = (
            done["usage"]["prompt_tokens"] * 1000 + done["usage"]["completion_tokens"] * 2000
        ) / 1e6
        assert cost["cost"] == pytest.approx(expected)
        assert cost["loop_prevented"] is None


async def test_an_interrupted_run_is_stopped_and_counted_as_a_loop_prevented(
    stack: Stack, llm: tuple[ScriptedLLM, str]
) -> None:
    tag = marker()
    slow_task(llm[0], tag)
    async with client(stack) as agent, stack.reviewer() as reviewer:
        before = {c["agent"]: c for c in (await agent.get("/v1/costs")).json()}
        run_id = await submit(agent, f"Check the balance a few times {tag}")
        await started_stepping(agent, run_id)
        response = await agent.post(f"/v1/runs/{run_id}/interrupt", json={"reason": "loop"})
        assert response.status_code == 202, response.text
        (approval,) = await pending(reviewer, run_id)
        decided = await reviewer.post(
            f"/v1/approvals/{approval['correlation_id']}/decision",
            json={"decision": "reject", "comment": "it is spinning"},
        )
        assert decided.status_code == 200, decided.text
        stopped = await wait_status(agent, run_id, "cancelled")
        assert stopped["error"] == "stopped by dev after an interrupt: it is spinning"
        calls = len(llm[0].calls_for(tag))
        assert calls < STEPS + 1
        cost = (await agent.get(f"/v1/runs/{run_id}/cost")).json()
        assert cost["loop_prevented"] == "interrupt"
        earlier = before.get("banking", {}).get("loops_prevented_by", {}).get("interrupt", 0)

        async def counted() -> int | None:
            # The per-agent figures read the `runs` projection, written just after the
            # stop that GET /v1/runs/{id} already shows: it counts a moment later.
            after = {c["agent"]: c for c in (await agent.get("/v1/costs")).json()}
            prevented = int(after["banking"]["loops_prevented_by"].get("interrupt", 0))
            return prevented if prevented > earlier else None

        assert await eventually(counted, timeout=10, what="the interrupt counted") == earlier + 1
        # An ended run cannot be interrupted: 409 with its state.
        late = await agent.post(f"/v1/runs/{run_id}/interrupt", json={"reason": "late"})
        assert late.status_code == 409
        assert late.json()["run"]["status"] == "cancelled"
        metrics = (await agent.get("/metrics")).text
        assert 'hitl_agent_loops_prevented{agent="banking",cause="interrupt"}' in metrics


async def test_a_run_that_ends_before_the_boundary_reports_the_interrupt_as_ended(
    stack: Stack, llm: tuple[ScriptedLLM, str]
) -> None:
    tag = marker()
    llm[0].script(tag, Say("done at once"), delay=3 * SLOW)
    async with client(stack) as agent:
        run_id = await submit(agent, f"Answer {tag}")

        async def model_called() -> bool:
            return len(llm[0].arrivals_for(tag)) >= 1

        # While the model thinks (its reply takes 2.4 s), after the boundary was passed.
        await eventually(model_called, timeout=60, what="the model call")
        response = await agent.post(f"/v1/runs/{run_id}/interrupt", json={"reason": "stop"})
        assert response.status_code == 202, response.text
        await wait_status(agent, run_id, "completed")
        state = (await agent.get(f"/v1/runs/{run_id}/interrupt")).json()
        assert state["state"] == "ended"
        assert state["run_status"] == "completed"


def log_lines(path: Path, run_id: str, text: str) -> int:
    if not path.exists():
        return 0
    return sum(1 for line in path.read_text().splitlines() if run_id in line and text in line)


@pytest.mark.timeout(1200)  # a second worker and long tasks, on a shared (loaded) machine
async def test_halt_parks_the_runs_on_two_workers_and_holds_a_new_task_until_resumed(
    stack: Stack, llm: tuple[ScriptedLLM, str]
) -> None:
    second = SlowAgentProcess(stack, "agent-oversight-2")
    logs = {"agent": stack.logs / "agent.log", "agent-2": second.log}
    try:
        async with (
            client(stack) as agent,
            client(stack, OPS_TOKEN) as ops,
            client(stack, ADMIN_TOKEN) as admin,
            client(stack, AUDITOR_TOKEN) as auditor,
            live(auditor, agent="banking", status="halted") as halted_live,
        ):
            # Runs land on a worker by partition: submit batches until each worker
            # drives one; the others are cancelled. Long tasks: still running at the halt.
            tags: dict[str, str] = {}
            running: dict[str, str] = {}
            for _ in range(10):
                batch = []
                for _ in range(4):
                    tag = marker()
                    slow_task(llm[0], tag, steps=LONG)
                    run_id = await submit(agent, f"Check the balance a few times {tag}")
                    tags[run_id] = tag
                    batch.append(run_id)

                # Placed by partition (a worker starts its tasks as they come, each run
                # on its own; a worker still joining the group starts them late): wait until
                # both workers drive one (or the whole batch started), not for every run.
                async def placed(batch: list[str] = batch) -> dict[str, str] | None:
                    found = {
                        run_id: name
                        for run_id in batch
                        for name, path in logs.items()
                        if log_lines(path, run_id, "run started") > 0
                    }
                    workers = set(found.values()) | set(running.values())
                    return found if len(workers) == 2 or len(found) == len(batch) else None

                found = await eventually(placed, timeout=240, what="runs on both workers")
                for run_id in batch:
                    worker = found.get(run_id)
                    if worker is not None and worker not in running.values():
                        running[run_id] = worker
                    else:
                        # A spare (or not started yet): cancelled, so it loads nobody.
                        cancelled = await agent.post(
                            f"/v1/runs/{run_id}/cancel", json={"reason": "spare"}
                        )
                        assert cancelled.status_code in (200, 409), cancelled.text
                        del tags[run_id]
                # A run picked from an earlier batch may have ended by now (a loaded
                # machine places the next batch slowly): keep only runs with many steps
                # left, so the halt below finds them running.
                for run_id in list(running):
                    state = await run_state(agent, run_id)
                    if state["status"] != "running" or state["steps"] > LONG // 2:
                        await agent.post(f"/v1/runs/{run_id}/cancel", json={"reason": "late"})
                        del running[run_id], tags[run_id]
                if len(running) == 2:
                    break
            assert sorted(running.values()) == ["agent", "agent-2"]
            for run_id in running:
                await started_stepping(agent, run_id)

            response = await ops.post("/v1/agents/banking/halt", json={"reason": "retry loop"})
            assert response.status_code == 202, response.text
            assert response.json()["halted"] is True
            for run_id, worker in running.items():
                await wait_status(agent, run_id, "halted")
                # Parked by the worker driving it, at its step boundary.
                assert log_lines(logs[worker], run_id, "run halted") == 1
            calls = {r: len(llm[0].calls_for(t)) for r, t in tags.items()}
            await asyncio.sleep(3 * SLOW)
            assert {r: len(llm[0].calls_for(t)) for r, t in tags.items()} == calls

            # A new task is accepted and waits, without a model call.
            new_tag = marker()
            slow_task(llm[0], new_tag, steps=2)
            new_run = await submit(agent, f"Check the balance a few times {new_tag}")
            tags[new_run] = new_tag
            await wait_status(agent, new_run, "halted")
            assert llm[0].calls_for(new_tag) == []
            halts = (await auditor.get("/v1/halts")).json()
            assert [(h["agent"], h["by"], h["reason"]) for h in halts] == [
                ("banking", "ops", "retry loop")
            ]

            denied = await ops.post("/v1/agents/banking/resume")
            assert denied.status_code == 403, "only an admin lifts an emergency stop"
            assert (await run_state(agent, new_run))["status"] == "halted"
            resumed = await admin.post("/v1/agents/banking/resume", json={"reason": "fixed"})
            assert resumed.status_code == 200, resumed.text
            assert {*running, new_run} <= set(resumed.json()["resumed_runs"])
            for run_id in tags:
                await wait_status(agent, run_id, "completed", timeout=180)
            assert len(llm[0].calls_for(new_tag)) == 3
            assert (await auditor.get("/v1/halts")).json() == []
            audit = (await ops.get("/v1/agents/banking/audit")).json()
            assert [(a["action"], a["by"]) for a in audit[:2]] == [
                ("resume", "ada"),
                ("halt", "ops"),
            ]
            streamed = {e["run_id"] for e in halted_live if e["type"] == "halted"}
            assert {*running, new_run} <= streamed
            assert all(e["status"] == "halted" for e in halted_live)
    finally:
        second.stop()
        async with client(stack, ADMIN_TOKEN) as admin:
            # Never leave the agent halted for the module's next tests.
            await admin.post("/v1/agents/banking/resume")


def hitl(stack: Stack, *args: str) -> Result:
    env = {
        "HITL_APPROVAL_URL": stack.url("approval"),
        "HITL_AGENT_URL": stack.url("agent"),
        "HITL_TOKEN": DEV_TOKEN,
        "HITL_AGENT_TOKEN": DEV_AGENT_TOKEN,
    }
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


async def test_the_cli_interrupts_stops_and_prices_a_run(
    stack: Stack, llm: tuple[ScriptedLLM, str]
) -> None:
    tag = marker()
    slow_task(llm[0], tag)
    async with client(stack) as agent, stack.reviewer() as reviewer:
        run_id = await submit(agent, f"Check the balance a few times {tag}")
        await started_stepping(agent, run_id)
        result = await asyncio.to_thread(hitl, stack, "interrupt", run_id, "--reason", "cli stop")
        assert result.exit_code == 0, result.output
        assert f"run {run_id}: interrupt requested (by developer)" in result.output
        (approval,) = await pending(reviewer, run_id)
        cid = approval["correlation_id"]
        result = await asyncio.to_thread(hitl, stack, "reject", cid, "--comment", "enough")
        assert result.exit_code == 0, result.output
        await wait_status(agent, run_id, "cancelled")
        result = await asyncio.to_thread(hitl, stack, "cost", run_id)
        assert result.exit_code == 0, result.output
        assert "loop prevented (interrupt)" in result.output

        async def listed() -> str | None:
            # The listing reads the `runs` projection, written just after the stop.
            result = await asyncio.to_thread(hitl, stack, "runs", "--agent", "banking")
            line = next(line for line in result.output.splitlines() if run_id in line)
            return line if "cancelled" in line else None

        await eventually(listed, timeout=10, what="the listing to show the run cancelled")
        result = await asyncio.to_thread(hitl, stack, "halt", "no-such-agent", "--reason", "x")
        assert result.exit_code == 1
        assert "no agent named 'no-such-agent'" in result.output


async def test_delegation_applies_the_named_persons_roles_only(stack: Stack) -> None:
    async with (
        httpx.AsyncClient(
            base_url=stack.url("agent"), headers={"Authorization": f"Bearer {WEB_DELEGATE_TOKEN}"}
        ) as web,
        client(stack, OPS_TOKEN) as ops,
    ):
        # For `dev` (an operator): may halt, may not resume (admins only).
        as_dev = {"On-Behalf-Of": "dev"}
        halted = await web.post(
            "/v1/agents/banking-strict/halt", json={"reason": "t"}, headers=as_dev
        )
        assert halted.status_code == 202, halted.text
        assert halted.json()["by"] == "dev"
        refused = await web.post("/v1/agents/banking-strict/resume", headers=as_dev)
        assert refused.status_code == 403
        # Unknown people, and callers that are not delegates, get nothing.
        stranger = await web.get("/v1/runs", headers={"On-Behalf-Of": "nobody"})
        assert stranger.status_code == 403
        forged = await ops.get("/v1/runs", headers={"On-Behalf-Of": "ada"})
        assert forged.status_code == 403
        async with client(stack, ADMIN_TOKEN) as admin:
            lifted = await admin.post("/v1/agents/banking-strict/resume")
            assert lifted.status_code == 200, lifted.text
        # A submitter named by the delegate sees only their own runs.
        carol_view = (await web.get("/v1/runs", headers={"On-Behalf-Of": "carol"})).json()
        assert all(item["submitted_by"] == "carol" for item in carol_view["items"])


@pytest.mark.timeout(900)
async def test_the_live_runs_page_in_a_real_browser(
    stack: Stack, llm: tuple[ScriptedLLM, str], browser: Browser
) -> None:
    tag = marker()
    slow_task(llm[0], tag)
    async with (
        client(stack) as agent,
        client(stack, ADMIN_TOKEN) as admin,
        stack.reviewer() as reviewer,
    ):
        run_id = await submit(agent, f"Check the balance a few times {tag}")
        context, page = await signed_in(browser, stack)
        try:
            await page.goto(stack.url("approval") + "/ui/runs")
            row = page.locator(f'tr[data-run="{run_id}"]')
            await expect(row.locator(".status")).to_have_text("running", timeout=EXPECT_MS)
            html = await page.content()
            assert WEB_DELEGATE_TOKEN not in html, "no token in the page"

            # The run's page: its step history, and the interrupt button.
            await row.get_by_role("link").click()
            await expect(page.get_by_role("heading", name=re.compile("Run "))).to_be_visible(
                timeout=EXPECT_MS
            )
            await page.get_by_label("Reason").fill("the balance does not change, why look again")
            await page.get_by_role("button", name="Interrupt at the next step").click()
            await expect(page.get_by_text("Interrupt requested")).to_be_visible(timeout=EXPECT_MS)
            # It pauses at its next step: the page follows live and offers the approval.
            await expect(page.locator("#status")).to_have_text(
                "awaiting approval", timeout=EXPECT_MS
            )
            await expect(page.get_by_text("Waiting for a decision (supervisor)")).to_be_visible(
                timeout=EXPECT_MS
            )
            await expect(page.locator("#history")).to_contain_text("interrupted", timeout=EXPECT_MS)
            await screenshot(page, "web-run.png")

            # Halt the agent from the board; a new task then shows up live, halted.
            await page.goto(stack.url("approval") + "/ui/runs")
            await page.get_by_placeholder("why stop banking", exact=True).fill(
                "retry loop on the ledger"
            )
            await page.get_by_role("button", name="Halt banking", exact=True).click()
            await expect(page.get_by_text("Agent banking is halted")).to_be_visible(
                timeout=EXPECT_MS
            )
            await expect(page.get_by_text("Emergency stop by dev")).to_be_visible(timeout=EXPECT_MS)
            second_tag = marker()
            slow_task(llm[0], second_tag, steps=1)
            second = await submit(agent, f"Check the balance a few times {second_tag}")
            # No reload: the board follows the live stream.
            await expect(page.locator(f'tr[data-run="{second}"] .status')).to_have_text(
                "halted", timeout=EXPECT_MS
            )
            await screenshot(page, "web-runs.png")

            # `dev` is an operator, not an admin: the resume is refused and says why.
            await page.get_by_role("button", name="Resume banking (admins)").click()
            await expect(page.get_by_text("Not resumed")).to_be_visible(timeout=EXPECT_MS)
            await expect(page.get_by_text("Agent banking is halted")).to_be_visible(
                timeout=EXPECT_MS
            )
        finally:
            lifted = await admin.post("/v1/agents/banking/resume")
            assert lifted.status_code == 200, lifted.text
            await context.close()
        await wait_status(agent, second, "completed", timeout=120)
        (approval,) = await pending(reviewer, run_id)
        await reviewer.post(
            f"/v1/approvals/{approval['correlation_id']}/decision",
            json={"decision": "reject", "comment": "done looking"},
        )
        await wait_status(agent, run_id, "cancelled")
