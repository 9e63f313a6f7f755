"""A reviewer that decides every approval the chaos run produces, through the REST API.

It learns about requests from `approval.requested` (as a notifier would), waits its
planned thinking time, then approves, rejects, modifies or lets the approval expire.
A decision that hits a killed service (connection refused, 5xx) or an approval not yet
ingested (404) is retried with the same Idempotency-Key until the approval's deadline
has long passed. What the reviewer asked for is only an intent: the checks afterwards
read what actually won from the API.
"""

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from tests.support.chaos_load import Task
from tests.support.chaos_tap import Record

# Retrying past the deadline shows what a late decision gets (409 expired), bounded.
RETRY_PAST_DEADLINE = 20.0
RETRY_INTERVAL = 0.3


@dataclass
class Attempted:
    """What the reviewer did about one approval."""

    correlation_id: str
    task: Task
    verdict: str
    arguments: dict[str, Any] | None = None
    attempts: int = 0
    # The last HTTP status received; None when no answer ever came back.
    status: int | None = None
    answer: dict[str, Any] | None = None
    errors: list[str] = field(default_factory=list)


@dataclass
class Reviewer:
    url: str
    token: str
    tasks_by_run: dict[str, Task]
    attempted: dict[str, Attempted] = field(default_factory=dict)
    foreign: list[str] = field(default_factory=list)
    _jobs: set[asyncio.Task[None]] = field(default_factory=set)

    def see(self, record: Record) -> None:
        """Tap listener for `approval.requested`: one decision job per new approval."""
        body = record.body
        if body is None or "correlation_id" not in body or "run_id" not in body:
            return  # a malformed message the suite injected; the services dead-letter it
        cid, run_id = str(body["correlation_id"]), str(body["run_id"])
        task = self.tasks_by_run.get(run_id)
        if task is None:
            self.foreign.append(cid)
            return
        if cid in self.attempted or task.verdict is None:
            if task.verdict is None:
                self.foreign.append(cid)  # a task below the threshold must ask nobody
            return
        attempt = Attempted(cid, task, task.verdict)
        self.attempted[cid] = attempt
        if task.verdict != "expire":
            deadline = _deadline(body)
            job = asyncio.create_task(self._decide(attempt, deadline))
            self._jobs.add(job)
            job.add_done_callback(self._jobs.discard)

    async def _decide(self, attempt: Attempted, deadline: float) -> None:
        await asyncio.sleep(attempt.task.think)
        body: dict[str, Any] = {
            "decision": attempt.verdict,
            "comment": f"chaos reviewer: {attempt.verdict}",
        }
        if attempt.verdict == "modify":
            attempt.arguments = {
                "to_account": attempt.task.account,
                "amount": attempt.task.modified_amount,
                "from_account": "checking",
            }
            body["arguments"] = attempt.arguments
        headers = {
            "Authorization": f"Bearer {self.token}",
            "Idempotency-Key": f"chaos-{attempt.correlation_id}",
        }
        give_up = deadline + RETRY_PAST_DEADLINE
        async with httpx.AsyncClient(base_url=self.url, timeout=10) as http:
            while True:
                attempt.attempts += 1
                try:
                    response = await http.post(
                        f"/v1/approvals/{attempt.correlation_id}/decision",
                        json=body,
                        headers=headers,
                    )
                except httpx.HTTPError as exc:
                    attempt.errors.append(type(exc).__name__)
                else:
                    attempt.status = response.status_code
                    with contextlib.suppress(ValueError):
                        attempt.answer = response.json()
                    if response.status_code not in (404,) and response.status_code < 500:
                        return
                    attempt.errors.append(f"HTTP {response.status_code}")
                if time.time() > give_up:
                    return
                await asyncio.sleep(RETRY_INTERVAL)

    async def drain(self, timeout: float) -> None:
        """Wait (bounded) for every decision job to finish."""
        jobs = list(self._jobs)
        if jobs:
            await asyncio.wait(jobs, timeout=timeout)

    def cancel(self) -> None:
        for job in self._jobs:
            job.cancel()


def _deadline(body: dict[str, Any]) -> float:
    try:
        return datetime.fromisoformat(str(body["expires_at"])).timestamp()
    except (KeyError, ValueError):
        return datetime.now(UTC).timestamp() + 60
