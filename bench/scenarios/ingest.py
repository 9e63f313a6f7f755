"""Ingestion throughput: publish N approval requests at once, time until all are stored.

"Stored" is counted in the listing projection (`approvals`), which is what
GET /v1/approvals serves; a sample of ids is then fetched through the API to
confirm they are listable.
"""

import asyncio
import time
from typing import Any

from bench.load import approval_request, producer, send_request
from bench.scenarios.common import reviewer, store_size, stored_approvals
from tests.support.infra import Infra
from tests.support.stack import Stack

POLL_S = 0.25


async def publish_all(infra: Infra, topic: str, count: int) -> tuple[list[str], float]:
    """Publish `count` requests as fast as the producer batches them; return ids and time."""
    requests = [approval_request() for _ in range(count)]
    start = time.perf_counter()
    async with producer(infra.kafka_bootstrap_servers, linger_ms=5) as p:
        acks = [await send_request(p, topic, r) for r in requests]
        await asyncio.gather(*acks)
    return [r.correlation_id for r in requests], time.perf_counter() - start


async def wait_stored(
    infra: Infra, stack: Stack, target: int, *, timeout: float, since: float
) -> list[tuple[float, int]]:
    """Poll the stored count until it reaches `target`; return (seconds, count) samples."""
    samples: list[tuple[float, int]] = []
    while True:
        stored = await stored_approvals(infra.mongodb_url, stack.database)
        samples.append((time.perf_counter() - since, stored))
        if stored >= target:
            return samples
        if samples[-1][0] > timeout:
            raise TimeoutError(f"only {stored}/{target} approvals stored after {timeout}s")
        await asyncio.sleep(POLL_S)


def steady_rate(samples: list[tuple[float, int]], target: int) -> float | None:
    """Requests/s between 10% and 90% stored: the rate once the consumer is busy."""
    low = next(((t, n) for t, n in samples if n >= 0.1 * target), None)
    high = next(((t, n) for t, n in samples if n >= 0.9 * target), None)
    if low is None or high is None or high[0] <= low[0]:
        return None
    return round((high[1] - low[1]) / (high[0] - low[0]), 1)


async def run(infra: Infra, stack: Stack, *, count: int, timeout: float) -> dict[str, Any]:
    topic = stack.prefix + "approval.requested"
    # Warm-up: the consumer group has joined and the first write is done.
    await publish_all(infra, topic, 1)
    await wait_stored(infra, stack, 1, timeout=60, since=time.perf_counter())
    start = time.perf_counter()
    ids, published_in = await publish_all(infra, topic, count)
    samples = await wait_stored(infra, stack, count + 1, timeout=timeout, since=start)
    elapsed = samples[-1][0]
    async with reviewer(stack) as client:
        for cid in ids[:: max(1, count // 20)]:
            (await client.get(f"/v1/approvals/{cid}")).raise_for_status()
    return {
        "requests": count,
        "published_in_s": round(published_in, 2),
        "publish_rate_per_s": round(count / published_in, 1),
        "all_stored_in_s": round(elapsed, 2),
        "stored_per_s": round(count / elapsed, 1),
        "steady_stored_per_s": steady_rate(samples, count + 1),
        "count_poll_interval_s": POLL_S,
        "store_after": await store_size(infra.mongodb_url, stack.database),
    }
