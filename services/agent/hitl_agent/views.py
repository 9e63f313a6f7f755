"""The agent service's read side: the queries REST routes and SSE streams answer from.

Routes never reach into a store; they ask here (cosmicpython's `views.py`). A run and
its event pages are read by `_id` (cheap on FerretDB 1.x); listings scan the small
`runs` projection (`adapters/run_rows.py`) and stay off every hot path.
"""

import asyncio
from datetime import datetime
from typing import Protocol

from hitl_agent.adapters.run_rows import RunRow
from hitl_agent.domain.checkpoint import EventPage
from hitl_agent.domain.oversight import AuditEntry, Halt
from hitl_agent.domain.run import Run


class RunReads(Protocol):
    """The part of the run store read here (`service_layer.ports.RunStore` has it)."""

    async def latest(self, run_id: str, known: Run | None = None) -> Run | None: ...

    async def event_page(self, run_id: str, seq: int) -> EventPage | None: ...


class RowReads(Protocol):
    """Runs as lists show them, newest first (`adapters.run_rows.RunRows`)."""

    async def recent(
        self, *, agent: str | None = None, since: datetime | None = None, limit: int = 200
    ) -> list[RunRow]: ...


class OversightReads(Protocol):
    """The part of the oversight store read here (`service_layer.ports.OversightStore`)."""

    async def halt(self, agent: str) -> Halt | None: ...

    async def all_halts(self) -> list[Halt]: ...

    async def audit_of(self, agent: str, limit: int = 50) -> list[AuditEntry]: ...


class RunViews:
    def __init__(self, runs: RunReads, rows: RowReads, oversight: OversightReads) -> None:
        self.runs = runs
        self.rows = rows
        self.oversight = oversight

    async def run(self, run_id: str) -> Run | None:
        """The run after its last stored step; None if there is none."""
        return await self.runs.latest(run_id)

    async def runs_now(self, run_ids: list[str]) -> list[Run | None]:
        """Each run's latest state, read together (in `run_ids`' order)."""
        return list(await asyncio.gather(*(self.runs.latest(r) for r in run_ids)))

    async def event_page(self, run_id: str, seq: int) -> EventPage | None:
        """Checkpoint `seq`'s events and the run's status once they happened."""
        return await self.runs.event_page(run_id, seq)

    async def recent(
        self, *, agent: str | None = None, since: datetime | None = None, limit: int = 200
    ) -> list[RunRow]:
        """Runs as of where they last stopped, newest first."""
        return await self.rows.recent(agent=agent, since=since, limit=limit)

    async def halt(self, agent: str) -> Halt | None:
        return await self.oversight.halt(agent)

    async def halts(self) -> list[Halt]:
        """Every agent halted right now."""
        return await self.oversight.all_halts()

    async def audit_of(self, agent: str, limit: int = 50) -> list[AuditEntry]:
        """Halts, resumes and interrupts of the agent's runs, newest first."""
        return await self.oversight.audit_of(agent, limit)
