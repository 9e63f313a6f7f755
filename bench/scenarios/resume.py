"""decision -> resume at a steady rate, on real banking runs paused for approval.

Runs are submitted through the agent's REST API (offline planner: "Transfer 500 to
alice" pauses on the transfer policy), so every decision resumes a real stored run.
Each decision is timed from its HTTP response (and from its send) to the moment
the run's `resumed` RunEvent reaches this process from `agent.runs`; the agent's own
`occurred_at` gives a second reading on the same machine clock.
"""

import asyncio
import time
from typing import Any

import httpx

from bench.load import Decided, decide, paced
from bench.scenarios.common import reviewer, store_size, wait_listed
from bench.stats import by_window, summarize
from bench.tap import RunTap, tapping
from tests.support.infra import Infra
from tests.support.stack import Stack

WARMUP = 5
PREP_CONCURRENCY = 8


async def _prepare(stack: Stack, tap: RunTap, count: int) -> dict[str, str]:
    """Submit `count` runs; return correlation id -> run id once all are listed as pending."""
    gate = asyncio.Semaphore(PREP_CONCURRENCY)

    async def submit(agent: httpx.AsyncClient) -> tuple[str, str]:
        async with gate:
            response = await agent.post("/v1/runs", json={"input": "Transfer 500 to alice"})
            run_id = str(response.raise_for_status().json()["run_id"])
        paused = await tap.wait_for(run_id, "awaiting_approval", timeout=120)
        approvals = paused.detail.get("approvals")
        if not isinstance(approvals, list) or len(approvals) != 1:
            raise RuntimeError(f"expected one approval for run {run_id}: {paused.detail}")
        return str(approvals[0]), run_id

    async with stack.agent() as agent:
        pairs = dict(await asyncio.gather(*(submit(agent) for _ in range(count))))
    async with reviewer(stack) as client:
        await wait_listed(client, set(pairs), timeout=120)
    return pairs


async def run(infra: Infra, stack: Stack, *, count: int, rate: float, verb: str) -> dict[str, Any]:
    async with tapping(infra.kafka_bootstrap_servers, stack.prefix + "agent.runs") as tap:
        t0 = time.perf_counter()
        runs = await _prepare(stack, tap, count + WARMUP)
        prepared_in = time.perf_counter() - t0
        ids = list(runs)
        samples: list[tuple[Decided, float, float]] = []

        async with reviewer(stack) as client:

            async def decide_and_wait(cid: str) -> tuple[Decided, float, float]:
                d = await decide(client, cid, verb)
                if d.status != 200:
                    raise RuntimeError(f"decision on {cid} answered {d.status}")
                seen = await tap.wait_for(runs[cid], "resumed", timeout=60)
                return d, seen.received, seen.occurred_at

            for cid in ids[:WARMUP]:
                await decide_and_wait(cid)

            async def job(i: int) -> None:
                samples.append(await decide_and_wait(ids[WARMUP + i]))

            elapsed, late = await paced(count, rate, job)

        # Let the resumed runs finish, so the next scenario starts on a quiet machine.
        completed = 0
        for run_id in runs.values():
            try:
                await tap.wait_for(run_id, "completed", timeout=60)
                completed += 1
            except TimeoutError:
                break

    samples.sort(key=lambda s: s[0].sent)
    after_response = [recv - d.answered for d, recv, _ in samples]
    return {
        "decisions": count,
        "target_rate_per_s": rate,
        "achieved_rate_per_s": round(count / elapsed, 1),
        "starts_late_over_5ms": late,
        "verb": verb,
        "prepare_runs_s": round(prepared_in, 1),
        "response_to_resumed": summarize(after_response),
        "send_to_resumed": summarize([recv - d.sent for d, recv, _ in samples]),
        "response_to_resumed_agent_clock": summarize(
            [occurred - d.answered_wall for d, _, occurred in samples]
        ),
        "decision_http": summarize([d.answered - d.sent for d, _, _ in samples]),
        "response_to_resumed_by_quarter": by_window(after_response),
        "runs_completed": completed,
        "store_after": await store_size(infra.mongodb_url, stack.database),
    }
