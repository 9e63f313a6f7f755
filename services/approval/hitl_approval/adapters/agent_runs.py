"""The agent service's runs API, called by the reviewer web page for a signed-in reviewer.

The page holds a token of its own (APPROVAL_AGENT_TOKEN: a `delegate` principal of the
agent service) and names the reviewer in `On-Behalf-Of`; the agent service applies
that reviewer's own roles there. No token reaches the browser: it talks to this
service only, with its session cookie.
"""

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx


class AgentUnavailable(Exception):
    """The agent service is not configured, unreachable, or refused the call."""

    def __init__(self, message: str, status_code: int = 502) -> None:
        super().__init__(message)
        self.status_code = status_code


class AgentRuns:
    def __init__(self, http: httpx.AsyncClient, *, base_url: str, token: str) -> None:
        self.http = http
        self.base_url = base_url.rstrip("/")
        self.token = token

    @property
    def configured(self) -> bool:
        return bool(self.base_url and self.token)

    def headers(self, reviewer: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", "On-Behalf-Of": reviewer}

    async def call(
        self, method: str, path: str, *, reviewer: str, body: Any = None, params: Any = None
    ) -> Any:
        if not self.configured:
            raise AgentUnavailable(
                "runs are not connected: set APPROVAL_AGENT_URL and APPROVAL_AGENT_TOKEN", 503
            )
        for attempt in range(UNAVAILABLE_RETRIES + 1):
            try:
                response = await self.http.request(
                    method,
                    self.base_url + path,
                    headers=self.headers(reviewer),
                    json=body,
                    params=params,
                )
            except httpx.HTTPError as exc:
                raise AgentUnavailable(f"the agent service is unreachable ({exc!r})") from None
            # 503: its store or broker was slow; every call here is safe to repeat
            # (reads, and interrupt / halt / resume are idempotent).
            if response.status_code != 503 or attempt == UNAVAILABLE_RETRIES:
                break
            await asyncio.sleep(0.5 * (attempt + 1))
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise AgentUnavailable(str(detail)[:500], response.status_code)
        return response.json()

    async def events(self, *, reviewer: str, params: dict[str, str]) -> AsyncIterator[bytes]:
        """The agent's live stream of every run's events, relayed as it arrives."""
        if not self.configured:
            raise AgentUnavailable("runs are not connected", 503)
        timeout = httpx.Timeout(5.0, read=None)
        async with self.http.stream(
            "GET",
            self.base_url + "/v1/run-events",
            headers=self.headers(reviewer),
            params=params,
            timeout=timeout,
        ) as response:
            if response.status_code >= 400:
                raise AgentUnavailable("the agent service refused the stream", response.status_code)
            async for chunk in response.aiter_raw():
                yield chunk


def segment(value: str) -> str:
    return quote(value, safe="")


async def run_history(runs: AgentRuns, run_id: str, *, reviewer: str) -> list[dict[str, Any]]:
    """A run's stored events (its step history), read from its event stream until quiet."""
    if not runs.configured:
        raise AgentUnavailable("runs are not connected", 503)
    events: list[dict[str, Any]] = []
    timeout = httpx.Timeout(5.0, read=None)
    async with runs.http.stream(
        "GET",
        f"{runs.base_url}/v1/runs/{segment(run_id)}/events",
        headers=runs.headers(reviewer),
        params={"after": "0"},
        timeout=timeout,
    ) as response:
        if response.status_code >= 400:
            raise AgentUnavailable(f"no run with id {run_id!r}", response.status_code)
        lines = response.aiter_lines()
        while True:
            try:
                line = await asyncio.wait_for(anext(lines), QUIET_SECONDS)
            except (StopAsyncIteration, TimeoutError):
                break
            if line.startswith("data:"):
                events.append(json.loads(line.split(":", 1)[1]))
    return events


# A 503 is retried this many times before the page says the agent is unavailable.
UNAVAILABLE_RETRIES = 6
# A running run's stream stays open for what comes next; the page shows what is stored.
QUIET_SECONDS = 0.5
