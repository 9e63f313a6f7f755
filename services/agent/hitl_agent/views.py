"""The agent service's read side: the queries REST routes and SSE streams answer from.

Routes never reach into a store; they ask here (cosmicpython's `views.py`). Reads
are by `_id` (a run's latest state, one checkpoint's events), cheap on FerretDB 1.x.
"""

import asyncio
from typing import Protocol

from hitl_agent.adapters.runs import EventPage
from hitl_agent.domain.run import Run


class RunReads(Protocol):
    """The part of the run store the read side uses (`service_layer.ports.RunStore` has it)."""

    async def latest(self, run_id: str, known: Run | None = None) -> Run | None: ...

    async def event_page(self, run_id: str, seq: int) -> EventPage | None: ...


class RunViews:
    def __init__(self, runs: RunReads) -> None:
        self.runs = runs

    async def run(self, run_id: str) -> Run | None:
        """The run after its last stored step; None if there is none."""
        return await self.runs.latest(run_id)

    async def runs_now(self, run_ids: list[str]) -> list[Run | None]:
        """Each run's latest state, read together (in `run_ids`' order)."""
        return list(await asyncio.gather(*(self.runs.latest(r) for r in run_ids)))

    async def event_page(self, run_id: str, seq: int) -> EventPage | None:
        """Checkpoint `seq`'s events and the run's status once they happened."""
        return await self.runs.event_page(run_id, seq)
