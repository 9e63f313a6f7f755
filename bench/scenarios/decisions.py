"""Decision throughput: many concurrent reviewers approving through the REST API.

The approvals are ingested first (published straight to Kafka by an agent of the
bench's own), then `concurrency` clients decide them as fast as they are answered.
The agent service receives each approval.decided and, finding no run of its own,
ignores it: this scenario measures the approval service's decision path.
"""

import asyncio
import time
from typing import Any

from bench.load import Decided, decide
from bench.scenarios.common import reviewer, stored_approvals
from bench.scenarios.ingest import publish_all, wait_stored
from bench.stats import summarize
from tests.support.infra import Infra
from tests.support.stack import Stack


async def run(
    infra: Infra, stack: Stack, *, count: int, concurrency: int, timeout: float
) -> dict[str, Any]:
    # Pending approvals that earlier scenarios left (`started`, `ingest`) count too.
    before = await stored_approvals(infra.mongodb_url, stack.database)
    ids, _ = await publish_all(infra, stack.prefix + "approval.requested", count)
    await wait_stored(infra, stack, before + count, timeout=timeout, since=time.perf_counter())
    queue: asyncio.Queue[str] = asyncio.Queue()
    for cid in ids:
        queue.put_nowait(cid)
    results: list[Decided] = []
    async with reviewer(stack, connections=concurrency) as client:
        # Warm-up: connections opened, first decision written, before the clock starts.
        results_warm = [await decide(client, queue.get_nowait()) for _ in range(3)]

        async def worker() -> None:
            while not queue.empty():
                results.append(await decide(client, queue.get_nowait()))

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    statuses: dict[str, int] = {}
    for r in [*results_warm, *results]:
        statuses[str(r.status)] = statuses.get(str(r.status), 0) + 1
    return {
        "decisions": len(results),
        "concurrency": concurrency,
        "elapsed_s": round(elapsed, 2),
        "decisions_per_s": round(len(results) / elapsed, 1),
        "statuses": statuses,
        "latency": summarize([r.answered - r.sent for r in results]),
    }
