"""Helpers shared by the agent runtime's e2e modules (this module holds no tests).

A stack of real processes (approval + agent) whose agent gets an operators'
policy file, a files sandbox and the scripted OpenAI-compatible server; extra
agent processes in the same consumer group; REST and SSE helpers.
"""

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pymongo
from hitl_shared.directory import hash_token

from tests.support.http_server import free_port
from tests.support.infra import Infra
from tests.support.stack import Stack, approvals_of
from tests.support.wait import eventually

DAY = 86_400

# Agent API principals besides the development one (`developer`, dev-agent-token).
CAROL_TOKEN = "carol-agent-token"  # submits runs
MALLORY_TOKEN = "mallory-agent-token"  # submits runs too, but not carol's business
AUDITOR_TOKEN = "auditor-agent-token"  # reads every run, cancels none
OPS_TOKEN = "ops-agent-token"  # operates: reads and cancels every run
AGENT_TOKENS = [
    {"name": "carol", "token_sha256": hash_token(CAROL_TOKEN), "roles": ["submit"]},
    {"name": "mallory", "token_sha256": hash_token(MALLORY_TOKEN), "roles": ["submit"]},
    {"name": "auditor", "token_sha256": hash_token(AUDITOR_TOKEN), "roles": ["read"]},
    {"name": "ops", "token_sha256": hash_token(OPS_TOKEN), "roles": ["operate"]},
]

POLICIES: dict[str, Any] = {
    "banking": {"tools": {"transfer": {"timeout_seconds": 900}}},
    "banking-strict": {
        "extends": "banking",
        "tools": {
            "deposit": {"require_approval_when": [{"field": "amount", "op": "gt", "value": 50}]}
        },
    },
    "banking-router": {"extends": "banking", "style": "router", "confidence_threshold": 0.8},
}


@contextlib.contextmanager
def agent_stack(
    infra: Infra,
    llm_url: str,
    workdir: Path,
    *,
    env: dict[str, str] | None = None,
    start_timeout: float = 60.0,
) -> Iterator[Stack]:
    """The approval service and the agent as real processes (no notifier: not needed)."""
    policies = workdir / "policies.json"
    policies.write_text(json.dumps(POLICIES))
    sandbox = workdir / "sandbox"
    sandbox.mkdir()
    logs = workdir / "logs"
    logs.mkdir()
    stack = Stack(
        infra,
        logs,
        env_extra={
            "OPENAI_API_KEY": "test-key",
            "OPENAI_BASE_URL": llm_url + "/v1",
            "OPENAI_MODEL": "scripted",
            "AGENT_POLICIES_FILE": str(policies),
            "AGENT_FILES_SANDBOX": str(sandbox),
            "AGENT_MAX_REPEATED_FAILURES": "3",
            "AGENT_TOKENS": json.dumps(AGENT_TOKENS),
            # Every test of a module moves money from the same checking account.
            "AGENT_SEED_ACCOUNTS": json.dumps({"checking": 1_000_000, "alice": 0, "bob": 0}),
            **(env or {}),
        },
    )
    stack.env_extra["AGENT_APPROVAL_URL"] = stack.url("approval")
    # The reviewer web page's runs view reads this agent (with APPROVAL_AGENT_TOKEN).
    stack.env_extra["APPROVAL_AGENT_URL"] = stack.url("agent")
    try:
        stack.start("approval", timeout=start_timeout)
        stack.start("agent", timeout=start_timeout)
        yield stack
    finally:
        stack.close()
        client: pymongo.MongoClient[dict[str, Any]]
        with pymongo.MongoClient(infra.mongodb_url) as client:
            client.drop_database(stack.database)
        print(f"service logs: {logs}")


def sandbox_of(stack: Stack) -> Path:
    return Path(stack.env_extra["AGENT_FILES_SANDBOX"])


class AgentProcess:
    """One more agent replica with the stack's settings (same consumer group)."""

    # How long it may take to become healthy (a loaded machine starts slowly).
    STARTUP_SECONDS = 180.0  # a deadline: imports alone took 29 s at load 23

    def __init__(self, stack: Stack, name: str, **env: str) -> None:
        self.port = free_port()
        self.log = stack.logs / f"{name}.log"
        self.url = f"http://127.0.0.1:{self.port}"
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hitl_agent.main"],
                env={**stack.env, "AGENT_PORT": str(self.port), **env},
                stdout=out,
                stderr=out,
            )
        deadline = time.monotonic() + self.STARTUP_SECONDS
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{name} exited at start-up:\n{self.log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} not healthy:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def marker() -> str:
    return f"[{uuid.uuid4().hex[:8]}]"


async def submit(
    agent: httpx.AsyncClient, text: str, *, agent_name: str = "banking", **metadata: Any
) -> str:
    response = await agent.post(
        "/v1/runs", json={"input": text, "agent": agent_name, "metadata": metadata}
    )
    assert response.status_code == 202, response.text
    run_id: str = response.json()["run_id"]
    return run_id


async def run_state(agent: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    response = await agent.get(f"/v1/runs/{run_id}")
    response.raise_for_status()
    state: dict[str, Any] = response.json()
    return state


async def wait_status(
    agent: httpx.AsyncClient, run_id: str, status: str, *, timeout: float = 60
) -> dict[str, Any]:
    async def probe() -> dict[str, Any] | None:
        response = await agent.get(f"/v1/runs/{run_id}")
        if response.status_code == 404:
            return None  # not stored yet (e.g. a task still on its way from Kafka)
        state: dict[str, Any] = response.raise_for_status().json()
        assert state["status"] != "failed" or status == "failed", state
        return state if state["status"] == status else None

    return await eventually(probe, timeout=timeout, what=f"run {run_id} to be {status}")


async def pending(reviewer: httpx.AsyncClient, run_id: str, count: int = 1) -> list[dict[str, Any]]:
    """The run's pending approvals, once there are `count` of them (oldest first)."""

    async def probe() -> list[Any] | None:
        items = await approvals_of(reviewer, run_id, "pending")
        return items if len(items) == count else None

    items = await eventually(probe, timeout=60, what=f"{count} pending approvals of {run_id}")
    return sorted(items, key=lambda a: str(a["request"]["requested_at"]))


async def decide(
    reviewer: httpx.AsyncClient,
    correlation_id: str,
    decision: str,
    *,
    arguments: dict[str, Any] | None = None,
    comment: str = "",
) -> dict[str, Any]:
    body: dict[str, Any] = {"decision": decision, "comment": comment}
    if arguments is not None:
        body["arguments"] = arguments
    response = await reviewer.post(f"/v1/approvals/{correlation_id}/decision", json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def balances(agent: httpx.AsyncClient) -> dict[str, float]:
    response = await agent.get("/v1/accounts")
    response.raise_for_status()
    result: dict[str, float] = response.json()
    return result


async def read_events(
    agent: httpx.AsyncClient, run_id: str, *, last_event_id: int | None = None, timeout: float = 60
) -> list[dict[str, Any]]:
    """Read the run's SSE stream until the server closes it; each event as a dict."""
    headers = {} if last_event_id is None else {"Last-Event-ID": str(last_event_id)}
    events: list[dict[str, Any]] = []

    async def read() -> None:
        async with agent.stream("GET", f"/v1/runs/{run_id}/events", headers=headers) as response:
            assert response.status_code == 200, await response.aread()
            assert response.headers["content-type"].startswith("text/event-stream")
            frame: dict[str, str] = {}
            async for line in response.aiter_lines():
                if not line:
                    if "data" in frame:
                        events.append(
                            {
                                "id": int(frame["id"]),
                                "event": frame["event"],
                                **json.loads(frame["data"]),
                            }
                        )
                    frame = {}
                elif not line.startswith(":"):
                    name, _, value = line.partition(":")
                    frame[name] = value.removeprefix(" ")

    await asyncio.wait_for(read(), timeout)
    return events


async def run_events(agent: httpx.AsyncClient, run_id: str) -> list[str]:
    """The type of every event the run has stored so far."""
    state = await run_state(agent, run_id)
    if state["status"] == "awaiting_approval" or state["status"] in {
        "completed",
        "failed",
        "cancelled",
    }:
        return [e["event"] for e in await read_events(agent, run_id)]
    raise AssertionError(f"run {run_id} is still {state['status']}")


def age(path: Path, days: float) -> None:
    when = time.time() - days * DAY
    os.utime(path, (when, when))
