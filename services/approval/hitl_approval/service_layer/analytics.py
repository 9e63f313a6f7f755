"""Decision analytics: keep the hourly rollup, answer reports, expected waits, what-ifs.

The decide path calls `record` once per ended approval: no I/O there, the fact joins
an in-memory queue. `flush` (every second, in the background) adds queued facts to
this process's cells, writes the cells that changed (a whole-document replace by
`_id`: nobody else writes them), then stores the facts. A decision is counted once:
a cell holds a correlation id once, only the process that committed a decision
records it, and `repair` (at start-up) adds what a crash lost only after winning a
unique-key claim on the correlation id.
"""

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from hitl_contracts.rules import CandidatePolicy

from hitl_approval.adapters.analytics_store import AnalyticsStore
from hitl_approval.domain.analytics import (
    ExpectedWait,
    Fact,
    FatigueRule,
    GroupBy,
    Row,
    WaitTable,
    hour_after,
    hour_of,
    report,
)
from hitl_approval.domain.model import Approval
from hitl_approval.domain.whatif import (
    ShadowCall,
    candidate_verdict,
    shadow_summary,
    what_if,
)

log = logging.getLogger(__name__)

HOUR = timedelta(hours=1)


@dataclass
class _Cell:
    id: str
    hour: datetime
    ids: list[str] = field(default_factory=list)
    rows: dict[tuple[str, str, str, str, str], Row] = field(default_factory=dict)
    dirty: bool = False

    def add(self, fact: Fact) -> None:
        key = (fact.agent, fact.tool, fact.risk, fact.reviewer, fact.outcome)
        self.rows.setdefault(key, Row(*key)).add(fact)
        self.ids.append(fact.correlation_id)
        self.dirty = True


class Analytics:
    def __init__(
        self,
        store: AnalyticsStore,
        *,
        writer: str,
        clock: Callable[[], datetime],
        load: Callable[[str], Awaitable[Approval | None]],
        ended_between: Callable[[datetime, datetime], Awaitable[list[str]]],
        fatigue: FatigueRule | None = None,
        wait_window: timedelta = timedelta(days=7),
        wait_refresh: timedelta = timedelta(seconds=60),
        cell_size: int = 2000,
        repair_window: timedelta = timedelta(hours=24),
        repair_after: timedelta = timedelta(minutes=2),
    ) -> None:
        self.store = store
        # Cell ids name their writer: no two processes ever write one cell.
        self.writer = writer.replace("|", "_")
        self.clock = clock
        self.load = load
        self.ended_between = ended_between
        self.fatigue = fatigue or FatigueRule()
        self.wait_window = wait_window
        self.wait_refresh = wait_refresh
        self.cell_size = cell_size
        self.repair_window = repair_window
        self.repair_after = repair_after
        self._queue: dict[str, Fact] = {}
        self._cells: dict[datetime, _Cell] = {}
        self._cell_count = 0
        self._unstored: list[Fact] = []
        self._counted: set[str] = set()
        self._waits: tuple[datetime, WaitTable] | None = None

    # Keeping the rollup

    def record(self, approval: Approval) -> None:
        """The decide path's hook: queue an ended approval (no I/O, never raises)."""
        try:
            if approval.decision is not None and approval.correlation_id not in self._counted:
                self._queue[approval.correlation_id] = Fact.of(approval)
        except Exception:
            # Analytics must never fail a decision; repair finds it at the next start.
            log.exception("analytics: could not record %s", approval.correlation_id)

    async def flush(self) -> int:
        """Write what was recorded since the last flush; returns how many decisions."""
        queued, self._queue = list(self._queue.values()), {}
        for fact in queued:
            if fact.correlation_id in self._counted:
                continue
            self._cell(hour_of(fact.decided_at)).add(fact)
            self._counted.add(fact.correlation_id)
            self._unstored.append(fact)
        for cell in list(self._cells.values()):
            if cell.dirty:
                await self.store.write_cell(cell.id, cell.hour, cell.ids, list(cell.rows.values()))
                cell.dirty = False
        if self._unstored:
            await self.store.add_facts(self._unstored)
            self._unstored = []
        self._forget_old_cells()
        return len(queued)

    def _cell(self, hour: datetime) -> _Cell:
        cell = self._cells.get(hour)
        if cell is None or len(cell.ids) >= self.cell_size:
            # A full cell stays as written; a new one takes the hour's next decisions.
            self._cell_count += 1
            cell_id = f"{hour.isoformat()}|{self.writer}|{self._cell_count}"
            cell = self._cells[hour] = _Cell(cell_id, hour)
        return cell

    def _forget_old_cells(self) -> None:
        recent = hour_of(self.clock()) - HOUR
        for hour, cell in list(self._cells.items()):
            if hour < recent and not cell.dirty:
                del self._cells[hour]
                self._counted.difference_update(cell.ids)

    async def repair(self) -> int:
        """Add ended approvals a crash kept out of the rollup or the facts (start-up)."""
        now = self.clock()
        since = hour_of(now - self.repair_window)
        # Younger decisions may still be in a live replica's queue.
        ended = await self.ended_between(since, now - self.repair_after)
        if not ended:
            return 0
        counted = await self.store.counted_ids(since) | self._counted
        stored = await self.store.fact_ids(since)
        repaired = 0
        for correlation_id in ended:
            if correlation_id in counted and correlation_id in stored:
                continue
            approval = await self.load(correlation_id)
            if approval is None or approval.decision is None:
                continue
            if correlation_id not in counted and await self.store.claim(correlation_id):
                self.record(approval)
                repaired += 1
            elif correlation_id not in stored:
                await self.store.add_facts([Fact.of(approval)])
        if repaired:
            log.warning("analytics: %d ended approvals added to the rollup by repair", repaired)
        return repaired + await self.flush()

    # Reading it

    def window(self, since: datetime | None, until: datetime | None) -> tuple[datetime, datetime]:
        """The whole hours covering [since, until): the rollup's resolution is one hour."""
        end = hour_after(until or self.clock())
        start = hour_of(since) if since else end - timedelta(days=7)
        return start, max(end, start + HOUR)

    async def report(
        self, *, group_by: GroupBy, since: datetime | None, until: datetime | None
    ) -> dict[str, Any]:
        start, end = self.window(since, until)
        figures = report(await self.store.rows(start, end), group_by, self.fatigue)
        return {"since": start, "until": end, "group_by": group_by.value, **figures}

    async def expected_wait(self, agent: str, tool: str) -> ExpectedWait | None:
        now = self.clock()
        if self._waits is None or now - self._waits[0] >= self.wait_refresh:
            end = hour_after(now)
            rows = await self.store.rows(end - self.wait_window, end)
            self._waits = (now, WaitTable(rows))
        return self._waits[1].expected(agent, tool)

    async def what_if(
        self,
        candidate: CandidatePolicy,
        *,
        since: datetime | None,
        until: datetime | None,
        review_cap_seconds: float,
    ) -> dict[str, Any]:
        start, end = self.window(since, until)
        facts = await self.store.facts_between(start, end)
        calls = await self.store.shadow_between(start, end)
        figures = what_if(
            candidate_verdict(candidate), facts, calls, review_cap_seconds=review_cap_seconds
        )
        return {"since": start, "until": end, "candidate": candidate.name, **figures}

    async def shadow(
        self,
        candidate: str,
        *,
        since: datetime | None,
        until: datetime | None,
        review_cap_seconds: float,
    ) -> dict[str, Any]:
        start, end = self.window(since, until)
        calls = await self.store.shadow_between(start, end, candidate)
        # Decisions come after their request: read facts up to now, not just the window.
        facts = await self.store.facts_between(start, hour_after(self.clock()) + HOUR)
        by_call = {(f.run_id, f.tool_call_id): f for f in facts}
        figures = shadow_summary(candidate, calls, by_call, review_cap_seconds=review_cap_seconds)
        return {"since": start, "until": end, **figures}

    async def record_shadow(self, calls: list[ShadowCall]) -> None:
        await self.store.add_shadow(calls)
