"""Oversight at the step boundary: interrupts pause a run, halts stop an agent's runs.

The runner calls `Oversight.boundary` once before each step. It reads two flags by
`_id` (the run's interrupt, the agent's halt, a read concurrent boundaries share) and, when one is set, stores the pause
as the run's next checkpoint instead of the step. The flags live in the store, so a
request received by any replica reaches whichever worker drives the run, before or
after a restart.

- An interrupt pauses the run with an approval of kind `supervisor`, decided like any
  other: approve goes on, approve with a comment goes on and tells the model the
  comment, reject (or expiry) stops the run.
- A halt parks every run of the agent (status `halted`, no approval: an emergency stop
  must not flood reviewers). Resuming the agent sets each back to running and wakes it
  through `agent.tasks` (and, should that publish fail, through stalled-run recovery).
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from hitl_contracts import RunEventType, TaskSubmitted
from hitl_contracts.base import utcnow
from hitl_shared.shared_read import SharedRead

from hitl_agent.domain.changes import Changes
from hitl_agent.domain.oversight import (
    AuditEntry,
    Halt,
    Interrupt,
    InterruptState,
    deliver_notes,
    supervisor_call,
)
from hitl_agent.domain.run import Run, RunStatus
from hitl_agent.service_layer.ports import OversightStore
from hitl_agent.service_layer.requests import summary

if TYPE_CHECKING:
    from hitl_agent.service_layer.runner import Runner

log = logging.getLogger(__name__)

Commit = Callable[[Run, Changes], Awaitable[bool]]
Wake = Callable[[TaskSubmitted], Awaitable[None]]

MAX_RACES = 32


class RunEnded(Exception):
    def __init__(self, run: Run) -> None:
        super().__init__(f"run {run.run_id} already ended ({run.status.value})")
        self.run = run


class Oversight:
    def __init__(self, store: OversightStore, *, approval_timeout: timedelta) -> None:
        self.store = store
        self.approval_timeout = approval_timeout
        # Every boundary of every run reads its agent's halt: concurrent ones share
        # reads (each still sees every halt set before it asked).
        self.halt_of = SharedRead(store.halt)

    async def boundary(self, run: Run, commit: Commit) -> bool:
        """Before a step: True when the run paused here (or lost a race) and must not step."""
        if run.turn is None:
            deliver_notes(run)
        interrupt, halt = await asyncio.gather(
            self.store.interrupt(run.run_id), self.halt_of(run.agent)
        )
        if halt is not None:
            return await self._park(run, halt, commit)
        if interrupt is not None and interrupt.state is InterruptState.REQUESTED:
            return await self._pause(run, interrupt, commit)
        return False

    # Interrupts

    async def interrupt(self, run: Run, *, reason: str, by: str) -> tuple[Interrupt, bool]:
        """Flag the run; it pauses at its next step boundary. Raises RunEnded."""
        if run.status.terminal:
            raise RunEnded(run)
        flag, stored = await self.store.request_interrupt(
            Interrupt(run_id=run.run_id, reason=reason, by=by)
        )
        if stored:
            await self.store.audit(
                AuditEntry(
                    action="interrupt", agent=run.agent, by=by, reason=reason, run_id=run.run_id
                )
            )
        return flag, stored

    async def interrupt_of(self, run: Run) -> Interrupt | None:
        """The run's latest interrupt; one the run outran is reported as ended."""
        flag = await self.store.interrupt(run.run_id)
        if flag is not None and flag.state is InterruptState.REQUESTED and run.status.terminal:
            await self.store.settle_interrupt(
                run.run_id, flag.id, InterruptState.ENDED, run_status=run.status.value
            )
            flag = flag.model_copy(
                update={"state": InterruptState.ENDED, "run_status": run.status.value}
            )
        return flag

    async def _pause(self, run: Run, flag: Interrupt, commit: Commit) -> bool:
        if run.find_pending(flag.approval_id) is None:
            pending = supervisor_call(run, flag, self.approval_timeout)
            changes = Changes()
            run.pending.append(pending)
            changes.held.append(pending)
            run.status = RunStatus.AWAITING_APPROVAL
            changes.emit(
                RunEventType.INTERRUPTED,
                reason=flag.reason,
                by=flag.by,
                correlation_id=pending.correlation_id,
                step=run.steps,
            )
            changes.emit(
                RunEventType.AWAITING_APPROVAL, approvals=[summary(pending)], supervisor=flag.by
            )
            if not await commit(run, changes):
                return True
        # Paused now, or by an earlier attempt that stored the pause and died before this.
        await self.store.settle_interrupt(
            run.run_id,
            flag.id,
            InterruptState.PAUSED,
            correlation_id=flag.approval_id,
            run_status=run.status.value,
        )
        return run.status is not RunStatus.RUNNING

    # Halts

    async def halt(self, agent: str, *, reason: str, by: str) -> tuple[Halt, bool]:
        halt, stored = await self.store.set_halt(Halt(agent=agent, reason=reason, by=by))
        if stored:
            await self.store.audit(AuditEntry(action="halt", agent=agent, by=by, reason=reason))
        return halt, stored

    async def resume(self, agent: str, *, by: str, runner: "Runner", wake: Wake) -> list[str]:
        """Lift the halt and set every run it parked going again; their ids."""
        lifted = await self.store.lift_halt(agent)
        resumed: list[str] = []
        # After lifting: a run parked from now on sees the halt gone and goes on by itself.
        for run_id in await self.store.halted_of(agent):
            if await self._unpark(run_id, by=by, runner=runner, wake=wake):
                resumed.append(run_id)
        await self.store.audit(
            AuditEntry(
                action="resume", agent=agent, by=by, detail={"lifted": lifted, "runs": resumed}
            )
        )
        return resumed

    async def _park(self, run: Run, halt: Halt, commit: Commit) -> bool:
        # Listed before the checkpoint: a resume that lists the agent's parked runs
        # after the pause is stored cannot miss it.
        await self.store.index_halted(run.run_id, run.agent)
        run.status = RunStatus.HALTED
        changes = Changes()
        changes.emit(RunEventType.HALTED, reason=halt.reason, by=halt.by, step=run.steps)
        if not await commit(run, changes):
            return True
        if await self.store.halt(run.agent) is not None:
            return True
        # Resumed between the check and the pause: that resume may have listed the
        # parked runs before this one was stored, so go on here.
        run.status = RunStatus.RUNNING
        changes = Changes()
        changes.emit(RunEventType.RESUMED, halt=halt.reason, by="(the halt was lifted)")
        await self.store.unindex_halted(run.run_id)
        return not await commit(run, changes)

    async def _unpark(self, run_id: str, *, by: str, runner: "Runner", wake: Wake) -> bool:
        for _ in range(MAX_RACES):
            run = await runner.store.latest(run_id)
            if run is None or run.status is not RunStatus.HALTED:
                await self.store.unindex_halted(run_id)
                # Not parked (any more): its worker saw the halt lifted right after
                # parking it and set it going itself (see `_park`); still this lift's.
                return run is not None and not run.status.terminal
            run.status = RunStatus.RUNNING
            changes = Changes()
            changes.emit(RunEventType.RESUMED, by=by, halt="lifted")
            if not await runner.uow.commit(run, changes):
                continue
            await self.store.unindex_halted(run_id)
            # Rescued by recovery should the wake-up below never reach a worker.
            await runner.store.set_active(run_id, utcnow())
            try:
                await wake(
                    TaskSubmitted(
                        task_id=run.task_id,
                        input=run.input,
                        agent=run.agent,
                        metadata=run.metadata,
                        submitted_by=run.submitted_by,
                    )
                )
            except Exception as exc:
                log.warning(
                    "resumed run not woken (%r); stalled-run recovery carries it on",
                    exc,
                    extra={"run_id": run_id},
                )
            return True
        raise RuntimeError(f"could not resume run {run_id}: too many races")
