"""Decision analytics as pure arithmetic over rollup rows (no I/O).

A *fact* is one ended approval reduced to what analytics need. A report sums the facts
of its window into *rows* keyed by (agent, tool, risk level, reviewer, outcome) and
groups them by one dimension. Definitions (README "Decision analytics and what-if"):

- human decisions: approved + modified + rejected (expired and cancelled have no reviewer);
- approval rate: (approved + modified) / human decisions; modification rate: modified /
  human decisions; expiry rate: expired / all ended approvals;
- time to decision: decided_at - requested_at of human decisions; percentiles by
  nearest rank (the smallest value with at least p% of values at or below it).
"""

import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any

from hitl_contracts import Decision

from hitl_approval.domain.model import Approval

HUMAN = (Decision.APPROVED.value, Decision.MODIFIED.value, Decision.REJECTED.value)
OUTCOMES = [d.value for d in Decision]
COMMENT_CHARS = 200
TOP_COMMENTS = 5


class GroupBy(StrEnum):
    AGENT = "agent"
    TOOL = "tool"
    RISK = "risk"
    REVIEWER = "reviewer"


def day_of(at: datetime) -> date:
    return at.astimezone(UTC).date()


def days_between(since: datetime, until: datetime) -> list[date]:
    """The UTC days [since, until) touches."""
    first, last = day_of(since), day_of(until)
    return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def normalised_comment(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()[:COMMENT_CHARS]


@dataclass(frozen=True)
class Fact:
    """One ended approval, as analytics and the what-if read it."""

    correlation_id: str
    run_id: str
    tool_call_id: str
    agent: str
    tool: str
    risk: str
    reviewer: str  # "" for expired and cancelled
    outcome: str
    requested_at: datetime
    decided_at: datetime
    seconds: float
    comment: str
    arguments: dict[str, Any]

    @classmethod
    def of(cls, approval: Approval) -> "Fact":
        decided = approval.decision
        assert decided is not None, "only an ended approval is a fact"
        request = approval.request
        human = decided.decision.value in HUMAN
        seconds = (decided.decided_at - request.requested_at).total_seconds()
        return cls(
            correlation_id=approval.correlation_id,
            run_id=request.run_id,
            tool_call_id=request.tool_call_id or "",
            agent=request.agent,
            tool=request.tool,
            risk=request.risk_level.value,
            reviewer=decided.reviewer if human else "",
            outcome=decided.decision.value,
            requested_at=request.requested_at,
            decided_at=decided.decided_at,
            seconds=round(max(seconds, 0.0), 3),
            comment=normalised_comment(decided.comment) if human else "",
            # What the agent asked for: the what-if replays the policy on these.
            arguments=request.arguments,
        )

    @property
    def human(self) -> bool:
        return self.outcome in HUMAN

    # Stored packed, in two parts: what reports read, and what only the what-if needs
    # (the arguments are most of the bytes). Times as epoch seconds: cheap to compare.

    def packed(self) -> list[Any]:
        return [
            self.correlation_id,
            self.agent,
            self.tool,
            self.risk,
            self.reviewer,
            self.outcome,
            self.decided_at.timestamp(),
            self.seconds,
            self.comment,
        ]

    def packed_extra(self) -> list[Any]:
        return [self.run_id, self.tool_call_id, self.requested_at.timestamp(), self.arguments]

    @classmethod
    def unpack(cls, packed: list[Any], extra: list[Any]) -> "Fact":
        cid, agent, tool, risk, reviewer, outcome, decided, seconds, comment = packed
        run_id, call_id, requested, arguments = extra
        return cls(
            correlation_id=str(cid),
            run_id=str(run_id),
            tool_call_id=str(call_id),
            agent=str(agent),
            tool=str(tool),
            risk=str(risk),
            reviewer=str(reviewer),
            outcome=str(outcome),
            requested_at=datetime.fromtimestamp(float(requested), UTC),
            decided_at=datetime.fromtimestamp(float(decided), UTC),
            seconds=float(seconds),
            comment=str(comment),
            arguments=dict(arguments),
        )


RowKey = tuple[str, str, str, str, str]  # agent, tool, risk, reviewer, outcome


@dataclass
class Row:
    agent: str
    tool: str
    risk: str
    reviewer: str
    outcome: str
    n: int = 0
    seconds: list[float] = field(default_factory=list)
    comments: Counter[str] = field(default_factory=Counter)

    @property
    def key(self) -> RowKey:
        return (self.agent, self.tool, self.risk, self.reviewer, self.outcome)

    def add(self, fact: Fact) -> None:
        self.n += 1
        if fact.human:
            self.seconds.append(fact.seconds)
        if fact.outcome == Decision.REJECTED.value and fact.comment:
            self.comments[fact.comment] += 1

    def merge(self, other: "Row") -> None:
        self.n += other.n
        self.seconds.extend(other.seconds)
        self.comments.update(other.comments)

    def dump(self) -> dict[str, Any]:
        return {
            "k": list(self.key),
            "n": self.n,
            "s": self.seconds,
            "c": [[text, n] for text, n in self.comments.items()],
        }

    @classmethod
    def load(cls, raw: dict[str, Any]) -> "Row":
        agent, tool, risk, reviewer, outcome = (str(v) for v in raw["k"])
        return cls(
            agent,
            tool,
            risk,
            reviewer,
            outcome,
            n=int(raw["n"]),
            seconds=[float(s) for s in raw["s"]],
            comments=Counter({str(t): int(n) for t, n in raw["c"]}),
        )


def rows_of_packed(packed: Iterable[list[Any]], since: float, until: float) -> list[Row]:
    """`rows_of` straight from packed facts decided in [since, until) (epoch seconds)."""
    rows: dict[RowKey, Row] = {}
    for _, agent, tool, risk, reviewer, outcome, decided, seconds, comment in packed:
        if not since <= decided < until:
            continue
        key = (agent, tool, risk, reviewer, outcome)
        row = rows.get(key)
        if row is None:
            row = rows[key] = Row(*key)
        row.n += 1
        if outcome in HUMAN:
            row.seconds.append(seconds)
        if outcome == Decision.REJECTED.value and comment:
            row.comments[comment] += 1
    return list(rows.values())


def rows_of(facts: Iterable[Fact]) -> list[Row]:
    rows: dict[RowKey, Row] = {}
    for fact in facts:
        key = (fact.agent, fact.tool, fact.risk, fact.reviewer, fact.outcome)
        rows.setdefault(key, Row(*key)).add(fact)
    return list(rows.values())


def percentile(values: list[float], p: float) -> float | None:
    """Nearest rank: the smallest value with at least p% of the values at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(math.ceil(p / 100 * len(ordered)), 1) - 1]


def _rate(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


@dataclass(frozen=True)
class FatigueRule:
    """Approval fatigue: many decisions, nearly all approved as asked, decided fast.

    A reviewer is flagged when, in the window, they took at least `min_decisions`
    human decisions, approved at least `approval_rate` of them unmodified, and their
    median time to decision is at most `median_seconds`.
    """

    min_decisions: int = 20
    approval_rate: float = 0.95
    median_seconds: float = 15.0


@dataclass
class Group:
    value: str
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    seconds: list[float] = field(default_factory=list)
    comments: Counter[str] = field(default_factory=Counter)

    def add(self, row: Row) -> None:
        self.counts[row.outcome] = self.counts.get(row.outcome, 0) + row.n
        self.seconds.extend(row.seconds)
        self.comments.update(row.comments)

    @property
    def human(self) -> int:
        return sum(self.counts[o] for o in HUMAN)

    def summary(self, fatigue: FatigueRule | None) -> dict[str, Any]:
        total = sum(self.counts.values())
        human = self.human
        approved = self.counts[Decision.APPROVED.value]
        modified = self.counts[Decision.MODIFIED.value]
        median = percentile(self.seconds, 50)
        out: dict[str, Any] = {
            "value": self.value,
            "total": total,
            "counts": dict(self.counts),
            "approval_rate": _rate(approved + modified, human),
            "modification_rate": _rate(modified, human),
            "expiry_rate": _rate(self.counts[Decision.EXPIRED.value], total),
            "time_to_decision": {
                "decisions": len(self.seconds),
                "p50_seconds": median,
                "p90_seconds": percentile(self.seconds, 90),
            },
            "top_rejection_comments": [
                {"comment": text, "count": n}
                for text, n in sorted(self.comments.items(), key=lambda c: (-c[1], c[0]))[
                    :TOP_COMMENTS
                ]
            ],
        }
        if fatigue is not None:
            out["fatigue"] = bool(
                self.value
                and human >= fatigue.min_decisions
                and approved / human >= fatigue.approval_rate
                and median is not None
                and median <= fatigue.median_seconds
            )
        return out


def _dimension(row: Row, by: GroupBy) -> str:
    match by:
        case GroupBy.AGENT:
            return row.agent
        case GroupBy.TOOL:
            return f"{row.agent}/{row.tool}"
        case GroupBy.RISK:
            return row.risk
        case GroupBy.REVIEWER:
            return row.reviewer


def report(rows: Iterable[Row], by: GroupBy, fatigue: FatigueRule) -> dict[str, Any]:
    """Per-group figures and the whole window's, newest-first groups by size."""
    groups: dict[str, Group] = {}
    overall = Group("")
    for row in rows:
        groups.setdefault(_dimension(row, by), Group(_dimension(row, by))).add(row)
        overall.add(row)
    rule = fatigue if by is GroupBy.REVIEWER else None
    summaries = [g.summary(rule) for g in groups.values()]
    summaries.sort(key=lambda s: (-s["total"], s["value"]))
    out: dict[str, Any] = {"overall": overall.summary(None), "groups": summaries}
    if rule is not None:
        out["fatigued_reviewers"] = [s["value"] for s in summaries if s.get("fatigue")]
    return out


@dataclass(frozen=True)
class ExpectedWait:
    p50_seconds: float
    p90_seconds: float
    decisions: int
    basis: str  # "tool", "agent" or "all": the narrowest history with enough decisions


class WaitTable:
    """Expected time to a human decision for a new request, from recent rows."""

    def __init__(self, rows: Iterable[Row], *, min_decisions: int = 5) -> None:
        by_tool: dict[tuple[str, str], list[float]] = {}
        by_agent: dict[str, list[float]] = {}
        everything: list[float] = []
        for row in rows:
            by_tool.setdefault((row.agent, row.tool), []).extend(row.seconds)
            by_agent.setdefault(row.agent, []).extend(row.seconds)
            everything.extend(row.seconds)
        self.min_decisions = min_decisions
        self.by_tool = by_tool
        self.by_agent = by_agent
        self.everything = everything

    def expected(self, agent: str, tool: str) -> ExpectedWait | None:
        for basis, values in (
            ("tool", self.by_tool.get((agent, tool), [])),
            ("agent", self.by_agent.get(agent, [])),
            ("all", self.everything),
        ):
            if len(values) >= self.min_decisions:
                p50, p90 = percentile(values, 50), percentile(values, 90)
                assert p50 is not None
                assert p90 is not None
                return ExpectedWait(p50, p90, len(values), basis)
        return None
