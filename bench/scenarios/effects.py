"""Closed loop: `clients` reviewers approve paused runs as fast as they are answered.

Reports decisions/s over the HTTP phase and effects/s (approved transfers executed,
`tool_executed` on `agent.runs`) from the first decision sent to the last effect, and
how long after the last decision the last effect happened: a system that answers fast
but executes slowly shows a long tail here.
"""

import asyncio
import time
from typing import Any

from bench.load import Decided, decide
from bench.scenarios.common import reviewer
from bench.scenarios.paused import prepare, settle
from bench.stats import summarize
from bench.tap import RunTap
from tests.support.infra import Infra
from tests.support.stack import Stack

EFFECT_TIMEOUT_S = 120.0


async def run(
    infra: Infra, stack: Stack, tap: RunTap, *, count: int, clients: int
) -> dict[str, Any]:
    runs = await prepare(stack, tap, count)
    queue: asyncio.Queue[str] = asyncio.Queue()
    for cid in runs:
        queue.put_nowait(cid)
    answers: list[Decided] = []
    async with reviewer(stack, connections=clients) as client:

        async def worker() -> None:
            while not queue.empty():
                answers.append(await decide(client, queue.get_nowait()))

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        http_done = time.perf_counter()
        last_effect = start
        missing = 0
        for answer in answers:
            try:
                seen = await tap.wait_for(
                    runs[answer.correlation_id],
                    "tool_executed",
                    timeout=max(0.0, EFFECT_TIMEOUT_S - (time.perf_counter() - http_done)),
                    after=answer.sent,
                )
                last_effect = max(last_effect, seen.received)
            except TimeoutError:
                missing += 1
    completed = await settle(tap, list(runs.values()))
    statuses: dict[str, int] = {}
    for a in answers:
        statuses[str(a.status)] = statuses.get(str(a.status), 0) + 1
    done = len(answers) - missing
    return {
        "decisions": len(answers),
        "clients": clients,
        "decisions_per_s": round(len(answers) / (http_done - start), 1),
        "effects_per_s": round(done / max(last_effect - start, 1e-9), 1),
        "last_effect_after_last_decision_s": round(last_effect - http_done, 2),
        "effects_missing_after_s": {str(EFFECT_TIMEOUT_S): missing},
        "statuses": statuses,
        "decision_http": summarize([a.answered - a.sent for a in answers]),
        "runs_completed": completed,
    }
