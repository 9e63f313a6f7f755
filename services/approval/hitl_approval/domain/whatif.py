"""What a candidate policy would have done, replayed over what was stored (no I/O).

Two stores, because the approval history only holds calls that WERE asked for:

- decision facts (every ended approval): for each, would the candidate have asked?
  Those it would not have asked for are "let through"; their human outcome says
  whether that would have been a mistake (rejected or modified) and how much
  reviewer time it would have saved.
- shadow calls (recorded by agents running a candidate in shadow mode, every tool call
  including those that ran without approval): the only honest source for calls the
  candidate would ask for that the live policy let run.

Reviewer time of one decision: its time to decision, capped at `review_cap_seconds`
(beyond that the request was waiting, not being worked on).
"""

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from hitl_contracts import Decision
from hitl_contracts.rules import CandidatePolicy

from hitl_approval.domain.analytics import OUTCOMES, Fact

Verdict = Callable[[str, str, dict[str, Any]], bool | None]


@dataclass(frozen=True)
class ShadowCall:
    """One tool call as an agent's shadow mode recorded it."""

    candidate: str
    agent: str
    tool: str
    run_id: str
    tool_call_id: str
    arguments: dict[str, Any]
    live_asked: bool
    shadow_asks: bool
    at: datetime


def candidate_verdict(candidate: CandidatePolicy) -> Verdict:
    def asks(agent: str, tool: str, arguments: dict[str, Any]) -> bool | None:
        return candidate.asks(tool, arguments) if candidate.covers(agent, tool) else None

    return asks


def _history(judged: Iterable[tuple[Fact, bool]], review_cap_seconds: float) -> dict[str, Any]:
    asked = would_ask = 0
    let_through: Counter[str] = Counter()
    saved = 0.0
    for fact, asks in judged:
        asked += 1
        if asks:
            would_ask += 1
            continue
        let_through[fact.outcome] += 1
        if fact.human:
            saved += min(fact.seconds, review_cap_seconds)
    wrong = let_through[Decision.REJECTED.value] + let_through[Decision.MODIFIED.value]
    return {
        "asked": asked,
        "would_ask": would_ask,
        "would_let_through": asked - would_ask,
        "let_through_by_outcome": {o: let_through[o] for o in OUTCOMES},
        "let_through_rejected_or_modified": wrong,
        "reviewer_hours_saved": round(saved / 3600, 4),
    }


def _unasked(calls: Iterable[tuple[ShadowCall, bool]]) -> dict[str, Any]:
    seen = would_ask = 0
    first: datetime | None = None
    for call, asks in calls:
        seen += 1
        would_ask += asks
        first = call.at if first is None else min(first, call.at)
    return {
        "ran_without_approval": seen,
        "would_ask": would_ask,
        "recorded_since": first.isoformat() if first else None,
    }


def what_if(
    verdict: Verdict,
    facts: Iterable[Fact],
    calls: Iterable[ShadowCall],
    *,
    review_cap_seconds: float,
) -> dict[str, Any]:
    """A candidate replayed over the decision history and the shadow-recorded calls."""
    judged = [
        (fact, asks)
        for fact in facts
        if (asks := verdict(fact.agent, fact.tool, fact.arguments)) is not None
    ]
    unasked: dict[tuple[str, str], tuple[ShadowCall, bool]] = {}
    for call in calls:
        if call.live_asked:
            continue  # in the decision history already
        asks = verdict(call.agent, call.tool, call.arguments)
        if asks is not None:
            # Several candidates may have recorded one call: count it once.
            unasked[(call.run_id, call.tool_call_id)] = (call, asks)
    history = _history(judged, review_cap_seconds)
    extra = _unasked(unasked.values())
    return {
        "history": history,
        "unasked": extra,
        "would_ask_total": history["would_ask"] + extra["would_ask"],
    }


def shadow_summary(
    candidate: str,
    calls: Iterable[ShadowCall],
    facts_by_call: dict[tuple[str, str], Fact],
    *,
    review_cap_seconds: float,
) -> dict[str, Any]:
    """What one shadow candidate recorded, with the human outcome of the calls it let through."""
    mine = {(c.run_id, c.tool_call_id): c for c in calls if c.candidate == candidate}
    both = live_only = shadow_only = neither = undecided = 0
    judged: list[tuple[Fact, bool]] = []
    for key, call in mine.items():
        if call.live_asked and call.shadow_asks:
            both += 1
        elif call.live_asked:
            live_only += 1
        elif call.shadow_asks:
            shadow_only += 1
        else:
            neither += 1
        if call.live_asked:
            fact = facts_by_call.get(key)
            if fact is None:
                undecided += 1  # still pending, or its decision not rolled up yet
            else:
                judged.append((fact, call.shadow_asks))
    return {
        "candidate": candidate,
        "calls": len(mine),
        "live_asked": both + live_only,
        "shadow_would_ask": both + shadow_only,
        "both_ask": both,
        "only_live_asks": live_only,
        "only_shadow_asks": shadow_only,
        "neither_asks": neither,
        "live_asked_not_yet_decided": undecided,
        "decided": _history(judged, review_cap_seconds),
    }
