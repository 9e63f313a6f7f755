"""Real banking runs paused for approval, as the decision scenarios need them.

Runs are submitted through the agent's REST API (offline planner: "Transfer 500 to
alice" pauses on the transfer policy), so every decision resumes a real stored run and
its approval moves real money in the ledger.
"""

import asyncio

import httpx

from bench.scenarios.common import reviewer, start_run, wait_listed
from bench.tap import RunTap
from tests.support.stack import Stack

PREP_CONCURRENCY = 8
# The agent starts runs one at a time; on FerretDB 1.x that can take seconds each.
PREPARE_TIMEOUT_S = 600.0


async def prepare(stack: Stack, tap: RunTap, count: int) -> dict[str, str]:
    """Submit `count` runs; return correlation id -> run id once all are listed as pending."""
    gate = asyncio.Semaphore(PREP_CONCURRENCY)

    async def submit(agent: httpx.AsyncClient) -> tuple[str, str]:
        async with gate:
            run_id = await start_run(agent)
        paused = await tap.wait_for(run_id, "awaiting_approval", timeout=PREPARE_TIMEOUT_S)
        approvals = paused.detail.get("approvals")
        if not isinstance(approvals, list) or len(approvals) != 1:
            raise RuntimeError(f"expected one approval for run {run_id}: {paused.detail}")
        first = approvals[0]
        # A summary of the held call (or, from older agents, just its correlation id).
        return str(first["correlation_id"] if isinstance(first, dict) else first), run_id

    async with stack.agent() as agent:
        pairs = dict(await asyncio.gather(*(submit(agent) for _ in range(count))))
    async with reviewer(stack) as client:
        await wait_listed(client, set(pairs), timeout=PREPARE_TIMEOUT_S)
    return pairs


async def settle(tap: RunTap, run_ids: list[str], *, timeout: float = 60.0) -> int:
    """Wait (bounded) for runs to complete, so the next scenario starts on a quiet stack."""
    deadline = asyncio.get_running_loop().time() + timeout
    completed = 0
    for run_id in run_ids:
        left = max(0.0, deadline - asyncio.get_running_loop().time())
        try:
            await tap.wait_for(run_id, "completed", timeout=left)
            completed += 1
        except TimeoutError:
            pass
    return completed
