"""The summary a chaos run prints: what was done to the system and what came out."""

from collections import Counter

from hitl_shared.topics import dlq

from tests.support.chaos_bad_input import consumers
from tests.support.chaos_checks import Observed
from tests.support.chaos_fleet import Fleet
from tests.support.chaos_monkey import Journal


def summary(o: Observed, *, seed: int, fleet: Fleet, journal: Journal, took: float) -> str:
    big = [t for t in o.tasks if t.needs_approval]
    outcomes = Counter(a["status"] for a in o.approvals.values())
    runs = Counter(r["status"] for r in o.runs.values())
    answers = Counter(
        "no answer" if a.status is None else str(a.status)
        for a in o.attempted.values()
        if a.verdict != "expire"
    )
    retried = sum(1 for a in o.attempted.values() if a.attempts > 1)
    letters = {
        dlq(topic).removeprefix(o.topics.prefix): len(o.events(dlq(topic)))
        for topic in consumers(o.topics)
    }
    lines = [
        f"chaos run: seed {seed} (HITL_CHAOS_SEED={seed} repeats the plan), {took:.0f}s",
        f"tasks: {len(o.tasks)} ({len(big)} above the threshold, {len(o.tasks) - len(big)} below)",
        f"runs: {dict(runs)}",
        f"approvals: {len(o.approvals)}; final: {dict(outcomes)}",
        f"reviewer intents: {dict(Counter(a.verdict for a in o.attempted.values()))}",
        f"reviewer answers: {dict(answers)}; {retried} decisions needed retries",
        f"kills: {dict(journal.kills)}; starts per replica: "
        + str({name: r.starts for name, r in fleet.replicas.items()}),
        "restarts: " + ", ".join(f"{k} away {v:.1f}s" for k, v in journal.restarts.items()),
        f"malformed messages sent: {len(o.injected)}; dead letters: {letters}",
        f"money moved: {sum(o.balances.get(t.account, 0) for t in o.tasks):.2f}",
        "timeline:",
        *(f"  {line}" for line in journal.lines),
    ]
    return "\n".join(lines)
