"""request -> listable: one approval.requested at a time, until GET /v1/approvals lists it.

The clock starts just before the bench hands the event to its Kafka producer and
stops when the pending listing (the reviewer's queue) contains it. The listing is polled
every POLL_S, so the figure carries up to one poll period of rounding.
"""

import asyncio
import time
from typing import Any

from bench.load import approval_request, producer, send_request
from bench.scenarios.common import reviewer, start_run
from bench.stats import by_window, summarize
from bench.tap import RunTap
from tests.support.infra import Infra
from tests.support.stack import Stack

POLL_S = 0.002
TIMEOUT_S = 30.0


def pending_of(run_id: str) -> dict[str, str]:
    """The reviewer's queue (pending approvals), narrowed to one run."""
    return {"status": "pending", "run_id": run_id}


async def run(infra: Infra, stack: Stack, *, count: int) -> dict[str, Any]:
    topic = stack.prefix + "approval.requested"
    latencies: list[float] = []
    acked: list[float] = []
    polls = 0
    async with (
        producer(infra.kafka_bootstrap_servers, linger_ms=0) as p,
        reviewer(stack) as client,
    ):
        for i in range(count + 1):  # the first one warms up the consumer group and is dropped
            request = approval_request()
            start = time.perf_counter()
            await (await send_request(p, topic, request))
            ack = time.perf_counter()
            deadline = start + TIMEOUT_S
            while True:
                polls += 1
                page = (
                    await client.get("/v1/approvals", params=pending_of(request.run_id))
                ).raise_for_status()
                if page.json()["items"]:
                    break
                if time.perf_counter() > deadline:
                    raise TimeoutError(f"approval {request.correlation_id} never listed")
                await asyncio.sleep(POLL_S)
            if i:
                latencies.append(time.perf_counter() - start)
                acked.append(ack - start)
    return {
        "requests": count,
        "poll_interval_ms": POLL_S * 1000,
        "polls_per_request": round(polls / (count + 1), 1),
        "published_to_listed": summarize(latencies),
        "publish_ack": summarize(acked),
        "published_to_listed_by_quarter": by_window(latencies),
    }


async def started(infra: Infra, stack: Stack, tap: RunTap, *, count: int) -> dict[str, Any]:
    """start -> paused and listable: POST /v1/runs until GET /v1/approvals lists its approval.

    What a user sees when an agent asks: the run was submitted and a reviewer can
    already find the request. One run at a time. The listing is polled every POLL_S
    from the moment the run's `awaiting_approval` event reaches the benchmark (the agent
    publishes the run's approval request, acknowledged, before that event, so nothing
    can be listed earlier): polling from the start, 40 polls a run, each a scan of the
    pending approvals, cost the store most of a core taken from the system measured.
    """
    latencies: list[float] = []
    polls = 0
    async with stack.agent() as agent, reviewer(stack) as client:
        for i in range(count + 1):  # the first one warms up and is dropped
            start = time.perf_counter()
            run_id = await start_run(agent)
            deadline = start + TIMEOUT_S
            await tap.wait_for(run_id, "awaiting_approval", timeout=TIMEOUT_S, after=start)
            while True:
                polls += 1
                page = await client.get("/v1/approvals", params=pending_of(run_id))
                if page.raise_for_status().json()["items"]:
                    break
                if time.perf_counter() > deadline:
                    raise TimeoutError(f"run {run_id} never listed an approval")
                await asyncio.sleep(POLL_S)
            if i:
                latencies.append(time.perf_counter() - start)
    return {
        "runs": count,
        "poll_interval_ms": POLL_S * 1000,
        "polls_per_run": round(polls / (count + 1), 1),
        "started_to_listed": summarize(latencies),
        "started_to_listed_by_quarter": by_window(latencies),
    }
