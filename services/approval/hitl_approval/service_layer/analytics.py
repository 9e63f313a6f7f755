"""Decision analytics: keep the daily rollup, answer reports, expected waits, what-ifs.

The decide path calls `record` once per stored entry: no I/O there; an ended approval
joins an in-memory queue. `flush` (every second, in the background) adds the queued
facts to this replica's cells (one per UTC day, a new slot when one is full) and
writes the cells that changed, each as a whole document by `_id`. A decision is
counted once: a cell holds a correlation id once and only the replica that committed
a decision records it. A replica that crashed lost at most its last second of queue:
the next start-up finds it among the registered writers and adds, after winning a
unique-key claim per correlation id, the ended approvals no cell holds.
"""

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from hitl_contracts.rules import CandidatePolicy

from hitl_approval.adapters.analytics_store import AnalyticsStore
from hitl_approval.domain.analytics import (
    ExpectedWait,
    Fact,
    FatigueRule,
    GroupBy,
    WaitTable,
    day_of,
    days_between,
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


@dataclass
class _Cell:
    day: date
    slot: int
    facts: list[Fact] = field(default_factory=list)
    dirty: bool = False


class Analytics:
    def __init__(
        self,
        store: AnalyticsStore,
        *,
        writer: str,
        clock: Callable[[], datetime],
        load: Callable[[str], Awaitable[Approval | None]],
        alive: Callable[[], Awaitable[set[str]]],
        fatigue: FatigueRule | None = None,
        wait_window: timedelta = timedelta(days=7),
        wait_refresh: timedelta = timedelta(seconds=60),
        cell_size: int = 1000,
        repair_window: timedelta = timedelta(days=2),
    ) -> None:
        self.store = store
        self.writer = writer
        self.clock = clock
        self.load = load
        self.alive = alive
        self.fatigue = fatigue or FatigueRule()
        self.wait_window = wait_window
        self.wait_refresh = wait_refresh
        self.cell_size = cell_size
        self.repair_window = repair_window
        self._queue: dict[str, Fact] = {}
        # The cell each day's next decisions go to (only today's and yesterday's stay).
        self._cells: dict[date, _Cell] = {}
        self._waits: tuple[datetime, WaitTable] | None = None

    # Keeping the rollup

    def record(self, approval: Approval) -> None:
        """The decide path's hook: queue an ended approval (no I/O, never raises)."""
        try:
            # An approval ends once, in the one commit that appends its decision.
            if approval.decision is not None:
                self._queue[approval.correlation_id] = Fact.of(approval)
        except Exception:
            # Analytics must never fail a decision.
            log.exception("analytics: could not record %s", approval.correlation_id)

    async def flush(self) -> int:
        """Write what was recorded since the last flush; returns how many decisions."""
        queued = list(self._queue.values())
        for fact in queued:
            cell = await self._cell(day_of(fact.decided_at))
            cell.facts.append(fact)
            cell.dirty = True
            del self._queue[fact.correlation_id]
        for cell in list(self._cells.values()):
            if cell.dirty:
                await self.store.write_cell(cell.day, cell.slot, self.writer, cell.facts)
                cell.dirty = False
        self._forget_old_cells()
        return len(queued)

    async def _cell(self, day: date) -> _Cell:
        cell = self._cells.get(day)
        if cell is None or len(cell.facts) >= self.cell_size:
            # A full cell stays as written; a new slot takes the day's next decisions.
            start = cell.slot + 1 if cell else 0
            if cell is not None and cell.dirty:
                await self.store.write_cell(cell.day, cell.slot, self.writer, cell.facts)
            slot = await self.store.claim_slot(day, self.writer, start)
            cell = self._cells[day] = _Cell(day, slot)
        return cell

    def _forget_old_cells(self) -> None:
        yesterday = day_of(self.clock()) - timedelta(days=1)
        for day, cell in list(self._cells.items()):
            if day < yesterday and not cell.dirty:
                del self._cells[day]

    async def start(self) -> int:
        await self.store.register(self.writer, self.clock())
        return await self.check_writers()

    async def check_writers(self) -> int:
        """Repair what writers that stopped without a clean stop left out (rarely: a crash)."""
        crashed = await self.store.known_writers() - await self.alive() - {self.writer}
        if not crashed:
            return 0
        repaired = await self._repair()
        for writer in crashed:
            await self.store.forget_writer(writer)
        return repaired

    async def stop(self) -> None:
        """A clean stop: everything written, nothing for the next start-up to repair."""
        await self.flush()
        if not self._queue:
            await self.store.forget_writer(self.writer)

    async def _repair(self) -> int:
        # Looks at the ended approvals of the last days: a scan of the archive on
        # FerretDB, paid only after a crash.
        now = self.clock()
        since = now - self.repair_window
        ended = await self.store.ended_between(since, now)
        counted = await self.store.counted_ids(days_between(since, now))
        counted.update(f.correlation_id for c in self._cells.values() for f in c.facts)
        repaired = 0
        for correlation_id in ended:
            if correlation_id in counted or correlation_id in self._queue:
                continue
            approval = await self.load(correlation_id)
            if approval is None or approval.decision is None:
                continue
            if await self.store.claim(correlation_id):
                self.record(approval)
                repaired += 1
        if repaired:
            log.warning("analytics: %d ended approvals added to the rollup by repair", repaired)
        await self.flush()
        return repaired

    # Reading it

    def window(self, since: datetime | None, until: datetime | None) -> tuple[datetime, datetime]:
        """[since, until), by default the last 7 days."""
        end = until or self.clock()
        return since or end - timedelta(days=7), end

    async def facts(self, since: datetime, until: datetime) -> list[Fact]:
        """The ended approvals decided in [since, until), from the cells of those days."""
        found = await self.store.facts(days_between(since, until))
        return [f for f in found if since <= f.decided_at < until]

    async def report(
        self, *, group_by: GroupBy, since: datetime | None, until: datetime | None
    ) -> dict[str, Any]:
        start, end = self.window(since, until)
        rows = await self.store.rows(days_between(start, end), start, end)
        figures = report(rows, group_by, self.fatigue)
        return {"since": start, "until": end, "group_by": group_by.value, **figures}

    async def expected_wait(self, agent: str, tool: str) -> ExpectedWait | None:
        now = self.clock()
        if self._waits is None or now - self._waits[0] >= self.wait_refresh:
            since = now - self.wait_window
            rows = await self.store.rows(days_between(since, now), since, now)
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
        facts = await self.facts(start, end)
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
        facts = await self.facts(start, max(end, self.clock()) + timedelta(seconds=1))
        by_call = {(f.run_id, f.tool_call_id): f for f in facts}
        figures = shadow_summary(candidate, calls, by_call, review_cap_seconds=review_cap_seconds)
        return {"since": start, "until": end, **figures}

    async def record_shadow(self, calls: list[ShadowCall]) -> None:
        await self.store.add_shadow(calls)
