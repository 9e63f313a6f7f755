"""decision -> effect at a steady rate (open loop), on real banking runs paused for approval.

Each decision is timed from its HTTP request being sent to two moments seen from
`agent.runs` in this process: the run's `resumed` event, and its `tool_executed` event
for the approved transfer, which is when the action a user asked for has happened
(the figure a user sees). The agent's own `occurred_at` gives a second reading of the
effect on the same machine clock.
"""

import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from bench import report
from bench.load import Decided, decide, paced
from bench.scenarios.common import reviewer
from bench.scenarios.paused import prepare, settle
from bench.stats import by_window, summarize
from bench.tap import RunTap
from tests.support.infra import Infra
from tests.support.stack import Stack

WARMUP = 5
# Generous: a backlog drains slowly on FerretDB 1.x; what is still missing is reported.
EFFECT_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Sample:
    decided: Decided
    resumed: float | None  # perf_counter when `resumed` arrived here
    executed: float | None  # perf_counter when the approved call's `tool_executed` arrived
    executed_wall: float | None  # the agent's occurred_at for it (epoch seconds)


def sent_wall(s: Sample) -> float:
    """The wall-clock time the decision request was sent."""
    return s.decided.answered_wall - (s.decided.answered - s.decided.sent)


async def decide_and_wait(client: Any, tap: RunTap, cid: str, run_id: str, verb: str) -> Sample:
    d = await decide(client, cid, verb)
    # After an error answer the outbox relay may still deliver the decision.
    try:
        resumed = await tap.wait_for(run_id, "resumed", timeout=EFFECT_TIMEOUT_S)
    except TimeoutError:
        return Sample(d, None, None, None)
    if verb != "approve":
        return Sample(d, resumed.received, None, None)
    try:
        done = await tap.wait_for(run_id, "tool_executed", timeout=EFFECT_TIMEOUT_S, after=d.sent)
    except TimeoutError:
        return Sample(d, resumed.received, None, None)
    return Sample(d, resumed.received, done.received, done.occurred_at)


async def run(
    infra: Infra, stack: Stack, tap: RunTap, *, count: int, rate: float, verb: str
) -> dict[str, Any]:
    t0 = time.perf_counter()
    runs = await prepare(stack, tap, count + WARMUP)
    prepared_in = time.perf_counter() - t0
    report.progress(f"{len(runs)} runs paused in {prepared_in:.1f} s; deciding at {rate}/s")
    ids = list(runs)
    samples: list[Sample] = []

    async with reviewer(stack) as client:
        for cid in ids[:WARMUP]:
            await decide_and_wait(client, tap, cid, runs[cid], verb)

        async def job(i: int) -> None:
            cid = ids[WARMUP + i]
            samples.append(await decide_and_wait(client, tap, cid, runs[cid], verb))

        elapsed, late = await paced(count, rate, job)

    completed = await settle(tap, list(runs.values()))
    samples.sort(key=lambda s: s.decided.sent)
    ok = [s for s in samples if s.decided.status == 200]
    executed = [s for s in ok if s.executed is not None]
    to_effect = [s.executed - s.decided.sent for s in executed if s.executed is not None]
    span = samples[-1].decided.sent - samples[0].decided.sent if len(samples) > 1 else 0.0
    return {
        "decisions": count,
        "target_rate_per_s": rate,
        # Decisions sent per second (the rate the load actually had).
        "achieved_rate_per_s": round((count - 1) / max(span, 1e-9), 1),
        "decide_and_effect_all_s": round(elapsed, 1),
        "starts_late_over_5ms": late,
        "verb": verb,
        "statuses": dict(Counter(str(s.decided.status) for s in samples)),
        "prepare_runs_s": round(prepared_in, 1),
        "send_to_tool_executed": summarize(to_effect),
        "send_to_tool_executed_agent_clock": summarize(
            [s.executed_wall - sent_wall(s) for s in executed if s.executed_wall is not None]
        ),
        "send_to_resumed": summarize(
            [s.resumed - s.decided.sent for s in ok if s.resumed is not None]
        ),
        "decision_http": summarize([s.decided.answered - s.decided.sent for s in samples]),
        # Approved: no `tool_executed` in time; rejected: no `resumed` in time.
        "not_done_within_s": {
            str(EFFECT_TIMEOUT_S): len(ok)
            - len(executed if verb == "approve" else [s for s in ok if s.resumed is not None])
        },
        "send_to_tool_executed_by_quarter": by_window(to_effect),
        # When (epoch seconds) the deciding ran and its slowest decisions were sent, to
        # line a slow round up with the services' logs and a per-process CPU timeline.
        "deciding_wall": [round(sent_wall(samples[0]), 3), round(sent_wall(samples[-1]), 3)]
        if samples
        else [],
        "slowest_sent_wall_ms": [
            [round(sent_wall(s), 3), round((s.executed - s.decided.sent) * 1000, 1)]
            for s in sorted(executed, key=lambda s: s.decided.sent - (s.executed or 0))[:5]
            if s.executed is not None
        ],
        "runs_completed": completed,
    }
