"""Ingestion throughput: publish N approval requests at once, time until all are stored.

"Stored" means in the listing projection (`approvals`), which is what
GET /v1/approvals serves. Counting that collection costs FerretDB 1.24 a scan that
decodes every row (~0.8 s at 2,000), which would both slow the service it measures
and late-stamp the end; so progress is probed instead by `_id` (a cheap SQLite-side
scan): for each partition, the requests at every tenth of its offsets, in order. The
service handles a partition's records in order, so when a probe finds one, the
records before it on that partition were handled. A full count afterwards confirms
that all were stored (it is not timed), and a sample is fetched through the API.
"""

import asyncio
import time
from collections import defaultdict
from typing import Any

from pymongo import AsyncMongoClient

from bench.load import approval_request, producer, send_request
from bench.scenarios.common import reviewer, stored_approvals
from tests.support.infra import Infra
from tests.support.stack import Stack

POLL_S = 0.25
PROBE_POLL_S = 0.02
PROBES_PER_PARTITION = 10


async def publish_all(infra: Infra, topic: str, count: int) -> tuple[list[str], float]:
    """Publish `count` requests as fast as the producer batches them; return ids and time."""
    by_partition, elapsed = await publish_tracked(infra, topic, count)
    return [cid for ids in by_partition.values() for cid in ids], elapsed


async def publish_tracked(
    infra: Infra, topic: str, count: int
) -> tuple[dict[int, list[str]], float]:
    """`publish_all`, returning the ids per partition in offset order."""
    requests = [approval_request() for _ in range(count)]
    start = time.perf_counter()
    async with producer(infra.kafka_bootstrap_servers, linger_ms=5) as p:
        acks = [await send_request(p, topic, r) for r in requests]
        sent = await asyncio.gather(*acks)
    elapsed = time.perf_counter() - start
    placed: dict[int, list[tuple[int, str]]] = defaultdict(list)
    for request, meta in zip(requests, sent, strict=True):
        placed[meta.partition].append((meta.offset, request.correlation_id))
    return {part: [cid for _, cid in sorted(ids)] for part, ids in placed.items()}, elapsed


async def wait_probed(
    infra: Infra, stack: Stack, by_partition: dict[int, list[str]], *, timeout: float, since: float
) -> list[tuple[float, int]]:
    """Probe each partition's checkpoints by `_id` until its last request is stored.

    Returns (seconds, requests known stored) samples; the count is a lower bound.
    """
    tenths = range(1, PROBES_PER_PARTITION + 1)
    checkpoints = {
        part: sorted({max(0, len(ids) * k // PROBES_PER_PARTITION - 1) for k in tenths})
        for part, ids in by_partition.items()
    }
    reached = dict.fromkeys(by_partition, 0)  # per partition: records known handled
    samples: list[tuple[float, int]] = []
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(infra.mongodb_url)
    try:
        approvals = client[stack.database]["approvals"]
        while True:
            for part, ids in by_partition.items():
                for pos in checkpoints[part]:
                    if pos < reached[part]:
                        continue
                    if await approvals.find_one({"_id": ids[pos]}, {"_id": 1}) is None:
                        break
                    reached[part] = pos + 1
            samples.append((time.perf_counter() - since, sum(reached.values())))
            if all(reached[p] == len(ids) for p, ids in by_partition.items()):
                return samples
            if samples[-1][0] > timeout:
                raise TimeoutError(f"only {samples[-1][1]} approvals known stored after {timeout}s")
            await asyncio.sleep(PROBE_POLL_S)
    finally:
        await client.close()


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
    # Approvals earlier scenarios left pending (`started` leaves its runs paused).
    before = await stored_approvals(infra.mongodb_url, stack.database)
    # Warm-up: the consumer group has joined and the first write is done.
    await publish_all(infra, topic, 1)
    await wait_stored(infra, stack, before + 1, timeout=60, since=time.perf_counter())
    start = time.perf_counter()
    by_partition, published_in = await publish_tracked(infra, topic, count)
    samples = await wait_probed(infra, stack, by_partition, timeout=timeout, since=start)
    elapsed = samples[-1][0]
    # Not timed: that every request (and the warm-up one) is in the listing projection.
    stored = await stored_approvals(infra.mongodb_url, stack.database) - before
    if stored != count + 1:
        raise AssertionError(f"{stored - 1} of {count} requests stored once all probes answered")
    ids = [cid for part_ids in by_partition.values() for cid in part_ids]
    async with reviewer(stack) as client:
        for cid in ids[:: max(1, count // 20)]:
            (await client.get(f"/v1/approvals/{cid}")).raise_for_status()
    return {
        "requests": count,
        "published_in_s": round(published_in, 2),
        "publish_rate_per_s": round(count / published_in, 1),
        "all_stored_in_s": round(elapsed, 2),
        "stored_per_s": round(count / elapsed, 1),
        "steady_stored_per_s": steady_rate(samples, count),
        "probe_poll_interval_s": PROBE_POLL_S,
        "probes_per_partition": PROBES_PER_PARTITION,
    }
