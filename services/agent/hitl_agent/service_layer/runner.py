"""The agent runtime's use cases: submit, start, drive, resume, cancel, recover.

Nothing waits in memory. A run is a stream of checkpoints; whoever holds a task,
a decision or a cancel loads the latest one, takes one step and appends the next.
Appending is a unique-key insert, so of two replicas (or two deliveries of one
decision) exactly one step is stored; the other learns it lost and stops, or
re-reads and finds its decision already applied. A crash at any point leaves the
last checkpoint, and the redelivered message (or the relay) carries on from it.
"""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from hitl_contracts import ApprovalDecided, RunEventType, TaskSubmitted
from hitl_contracts.base import utcnow
from hitl_shared.decision_keys import DecisionKeys

from hitl_agent.domain.changes import CancelOrder, Changes
from hitl_agent.domain.checkpoint import Checkpoint
from hitl_agent.domain.decision import (
    Execute,
    Verdict,
    apply_decision,
    outcome_of,
    outcomes_outstanding,
    record_result,
)
from hitl_agent.domain.run import PendingCall, Run, RunStatus
from hitl_agent.service_layer.agents import AgentSpec, UnknownAgent
from hitl_agent.service_layer.outbox import Outbox
from hitl_agent.service_layer.oversight import Oversight
from hitl_agent.service_layer.ports import RunStore
from hitl_agent.service_layer.requests import approval_request
from hitl_agent.service_layer.steps import Steps
from hitl_agent.service_layer.trust import (
    DecisionRefused,
    Refusal,
    match_refusal,
    signature_refusal,
)
from hitl_agent.service_layer.unit_of_work import RunUnitOfWork

log = logging.getLogger(__name__)

# Races for one run are rare (a rebalance, a cancel during a decision): bounded retries.
MAX_RACES = 32
# A safety net far above any guard: each iteration stores progress.
MAX_ITERATIONS = 1_000


class UnknownRun(LookupError):
    pass


class InvalidTask(ValueError):
    pass


@dataclass
class NotCancellable(Exception):
    run: Run

    def __str__(self) -> str:
        return f"run {self.run.run_id} is already {self.run.status.value}"


class Runner:
    def __init__(
        self,
        *,
        store: RunStore,
        agents: dict[str, AgentSpec],
        steps: Steps,
        outbox: Outbox,
        keys: DecisionKeys,
        oversight: Oversight | None = None,
    ) -> None:
        self.store = store
        # Interrupts and halts, checked at each step boundary (None: not supervised).
        self.oversight = oversight
        self.agents = agents
        self.steps = steps
        self.outbox = outbox
        self.keys = keys
        self.uow = RunUnitOfWork(
            store,
            outbox,
            request_for=lambda run, pending: approval_request(run, pending, self.spec(run.agent)),
        )

    @property
    def model_name(self) -> str:
        return self.steps.model.name

    def spec(self, agent: str) -> AgentSpec:
        if agent not in self.agents:
            raise UnknownAgent(f"unknown agent {agent!r}; known: {sorted(self.agents)}")
        return self.agents[agent]

    async def get(self, run_id: str) -> Run | None:
        return await self.store.latest(run_id)

    def hosts(self, agent: str) -> bool:
        return agent in self.agents

    async def hold(
        self, task: TaskSubmitted, *, hosted_elsewhere: bool, digest: str = ""
    ) -> tuple[Run, bool]:
        """Store a task for an agent this worker does not host, so its run is visible.

        Its worker (when one runs) starts it from the task on Kafka and replaces this
        placeholder; until then the run says `queued` (another worker hosts the agent)
        or `unhosted` (none does). True: this call stored it (not a repeat).
        """
        _check_keys(task.metadata)
        status = RunStatus.QUEUED if hosted_elsewhere else RunStatus.UNHOSTED
        run = Run(
            run_id=task.task_id,
            task_id=task.task_id,
            agent=task.agent,
            input=task.input,
            status=status,
            metadata=task.metadata,
            submitted_by=task.submitted_by,
            request_digest=digest,
            prepared=False,
            error=None
            if hosted_elsewhere
            else f"no live worker hosts agent {task.agent!r}; the run starts when one does",
        )
        if await self.store.append(Checkpoint(run=run.model_copy(deep=True))):
            await self.store.project(run)
            if hosted_elsewhere:
                # Listed for rescue: the worker hosting the agent starts it should its
                # task never reach Kafka. (Unhosted ones are not: with no worker to take
                # them they would crowd the rescue list.)
                await self.store.set_active(run.run_id, run.updated_at)
            else:
                log.warning(
                    "task for agent %r, which no live worker hosts: run %s is unhosted",
                    task.agent,
                    task.task_id,
                    extra={"run_id": task.task_id},
                )
            return run, True
        existing = await self.store.latest(task.task_id)
        assert existing is not None
        return existing, False

    async def submit(self, task: TaskSubmitted) -> Run:
        """Store the queued run (idempotent by task id) so it is visible at once."""
        run, _ = await self.accept(task)
        return run

    async def accept(
        self,
        task: TaskSubmitted,
        *,
        digest: str = "",
        announce: Callable[[], Awaitable[None]] | None = None,
    ) -> tuple[Run, bool]:
        """Like submit; also whether this call stored it (False: the task id existed).

        `digest` identifies the request that named the task id, so a retry can be told
        from another request reusing its idempotency key. `announce` (when this call
        stored the run) runs as soon as its checkpoint is, beside the projection and
        the rescue listing: the API's publish of the task, so the run's consumer need
        not wait for those two writes. It must not raise (the run is stored either way).
        """
        spec = self.spec(task.agent)
        _check_keys(task.metadata)
        if (known := self.uow.recall(task.task_id)) is not None and known.prepared:
            # This process stored it moments ago (its API took the request, this is the
            # task from Kafka): start from that, no read. Should another delivery have
            # moved the run on since, storing the start fails and `_start` reads on.
            return known, False
        run = Run(
            run_id=task.task_id,
            task_id=task.task_id,
            agent=task.agent,
            input=task.input,
            style=spec.policy.style,
            budget=spec.budget(),
            metadata=task.metadata,
            submitted_by=task.submitted_by,
            request_digest=digest,
            messages=[
                {"role": "system", "content": spec.system_prompt},
                {"role": "user", "content": task.input},
            ],
        )
        run.active = True
        for _ in range(MAX_RACES):
            if await self.store.append(Checkpoint(run=run.model_copy(deep=True))):
                self.uow.remember(run)
                # Listed for rescue (should its task never reach a consumer) and
                # projected, while the task is already on its way. A crash before the
                # listing lands leaves the run as unlisted as a crash just before the
                # checkpoint would have; the caller's retry (same key) starts it.
                await asyncio.gather(
                    # First, so the task is on the wire before the writes are.
                    *([announce()] if announce is not None and run.seq == 0 else []),
                    self.store.project(run),
                    self.store.set_active(run.run_id, run.updated_at),
                )
                return run, run.seq == 0
            existing = await self.store.latest(task.task_id)
            assert existing is not None
            if existing.prepared or existing.status not in (RunStatus.QUEUED, RunStatus.UNHOSTED):
                return existing, False
            # A placeholder stored by a worker that does not host the agent: start for
            # real, keeping what the API that accepted it recorded.
            run.seq, run.events, run.created_at = (
                existing.seq + 1,
                existing.events,
                existing.created_at,
            )
            run.request_digest = existing.request_digest or run.request_digest
            run.submitted_by = existing.submitted_by or run.submitted_by
        raise RuntimeError(f"could not store run {task.task_id}: too many races")

    async def start(self, task: TaskSubmitted) -> None:
        run = await self.submit(task)
        self.uow.recall(task.task_id)  # started here: no later message needs that copy
        await self._start(run)

    async def _start(self, run: Run) -> None:
        if run.status is RunStatus.QUEUED:
            run.status = RunStatus.RUNNING
            changes = Changes()
            changes.emit(RunEventType.STARTED, input=run.input, model=self.model_name)
            if not await self.uow.commit(run, changes):
                # Started already: by a delivery driving it now (then one of the two
                # stops at its next step, losing the insert), or by one that crashed
                # mid-run, whose redelivery this is: carry on from what it stored.
                await self.drive(run.run_id)
                return
        # Also reached by a redelivered task whose first attempt crashed mid-run.
        await self.drive(run.run_id, run)

    async def drive(self, run_id: str, run: Run | None = None) -> None:
        """Take steps until the run pauses, ends, or another worker takes over."""
        run = run or await self.store.latest(run_id)
        for _ in range(MAX_ITERATIONS):
            if run is None or run.status is not RunStatus.RUNNING:
                return
            if outcomes_outstanding(run):
                # Resumed, but a decision's handler is still completing its outcome;
                # that handler drives the run on once the turn has every result.
                return
            if self.oversight is not None and await self.oversight.boundary(run, self.uow.commit):
                return  # paused by an interrupt or a halt (or another worker moved it)
            changes = Changes()
            await self.steps.advance(run, self.spec(run.agent), changes)
            if not await self.uow.commit(run, changes):
                log.info("another worker advanced this run; leaving it", extra={"run_id": run_id})
                return
        log.error("run did not settle after %d steps", MAX_ITERATIONS, extra={"run_id": run_id})

    async def resume(self, decided: ApprovalDecided) -> None:
        """Apply one decision once; carry on when every call of its turn is decided.

        Load the run, decide in the domain (`apply_decision`), execute what was
        approved, commit the decision and its outcome as one checkpoint (which carries
        `resumed` when it was the last open call), continue the run. The execution is
        its own unit of work, committed before the tool runs: a claim keyed by the call
        (`executions`), none for an idempotent tool, whose effects are keyed already. So
        a crash before the checkpoint is stored only repeats a lookup (or a no-op).
        """
        ids = {"run_id": decided.run_id, "correlation_id": decided.correlation_id}
        applied: Run | None = None
        # Checked on every delivery: the outcome below uses this message's arguments.
        forged = await signature_refusal(self.keys, decided)
        run = await self.uow.load(decided.run_id)
        for _ in range(MAX_RACES):
            if run is None:
                if forged is not None:
                    raise DecisionRefused(forged)
                log.warning("decision for an unknown run; ignored", extra=ids)
                return
            pending = run.find_pending(decided.correlation_id)
            if pending is None:
                if forged is not None:
                    raise DecisionRefused(forged)
                log.warning("decision for an approval this run never asked for", extra=ids)
                return
            # An agent no longer deployed has no edit policy to check; nothing runs then.
            spec = self.agents.get(run.agent)
            tool = spec.registry.get(pending.tool) if spec else None
            refusal = forged or match_refusal(run, pending, decided, tool)
            if refusal is not None:
                if await self._refuse(run, pending, decided, refusal):
                    raise DecisionRefused(refusal)
                run = await self.uow.reload(decided.run_id)
                continue
            changes = Changes()
            verdict = apply_decision(run, pending, decided, changes)
            if verdict is Verdict.DUPLICATE:
                log.info("decision already applied (duplicate delivery)", extra=ids)
                break
            if verdict is Verdict.CONFLICT:
                # Two signed decisions cannot differ; never let a second one change course.
                log.error("a second, different decision for a decided call; ignored", extra=ids)
                break
            if verdict is Verdict.OUTCOME:
                tool = self.spec(run.agent).registry.get(pending.tool)
                result = await self._carry_out(
                    run, pending, outcome_of(pending, decided, tool), changes
                )
                record_result(run, pending, result)
            if await self.uow.commit(run, changes):
                applied = run  # carry on from what was just stored: no read back
                break
            run = await self.uow.reload(decided.run_id)
        else:
            raise RuntimeError(f"could not apply decision {decided.correlation_id}: too many races")
        # A redelivery after a crash mid-run carries on here; otherwise this finds
        # the run paused or finished and does nothing.
        await self.drive(decided.run_id, applied)

    async def _carry_out(
        self, run: Run, pending: PendingCall, outcome: str | Execute, changes: Changes
    ) -> str:
        if isinstance(outcome, str):
            return outcome
        result = await self.steps.execute(
            run, outcome.tool, pending.tool_call_id, outcome.args, outcome.preview, changes
        )
        return outcome.prefix + result

    async def _refuse(
        self, run: Run, pending: PendingCall, decided: ApprovalDecided, refusal: Refusal
    ) -> bool:
        """Write the refusal to the run's history; the run itself stays as it was."""
        log.warning(
            "refused a decision (%s): %s",
            refusal.code,
            refusal.reason,
            extra={"run_id": run.run_id, "correlation_id": decided.correlation_id},
        )
        changes = Changes()
        changes.emit(
            RunEventType.DECISION_REFUSED,
            correlation_id=decided.correlation_id,
            code=refusal.code,
            reason=refusal.reason,
            decision=decided.decision.value,
            reviewer=decided.reviewer,
            tool=pending.tool,
            event_id=str(decided.event_id),
        )
        return await self.uow.commit(run, changes)

    async def cancel(self, run_id: str, reason: str, *, by: str = "") -> Run:
        """Cancel a run; `by` is the authenticated principal, credited in the history."""
        for _ in range(MAX_RACES):
            run = await self.store.latest(run_id)
            if run is None:
                raise UnknownRun(run_id)
            if run.status.terminal:
                raise NotCancellable(run)
            open_calls = run.open_calls()
            for pending in open_calls:
                pending.resolved, pending.decision, pending.comment = True, "cancelled", reason
            run.status = RunStatus.CANCELLED
            who = f" by {by}" if by else ""
            run.error = f"cancelled{who}: {reason}"
            changes = Changes()
            changes.cancels = [
                CancelOrder(p.correlation_id, f"run cancelled{who}: {reason}") for p in open_calls
            ]
            changes.emit(
                RunEventType.CANCELLED,
                reason=reason,
                by=by,
                approvals=[p.correlation_id for p in open_calls],
            )
            if await self.uow.commit(run, changes):
                return run
        raise RuntimeError(f"could not cancel run {run_id}: too many races")

    async def recover(self, *, stalled_after: timedelta) -> int:
        """Carry on runs nobody advanced for a while (their worker died off-Kafka)."""
        count = 0
        cutoff = utcnow() - stalled_after
        for run_id in await self.store.active_since(cutoff):
            run = await self.store.latest(run_id)
            waiting = run is not None and not run.prepared and not run.status.terminal
            if run is None or not (run.in_progress or waiting):
                await self.store.set_active(run_id, None)
                continue
            if not self.hosts(run.agent):
                continue  # a worker hosting its agent rescues it
            if run.updated_at >= cutoff:
                continue  # still making progress
            log.warning("recovering a stalled run", extra={"run_id": run_id})
            if waiting:
                # Accepted by a worker that does not host the agent, and its task never
                # reached this one (the publish failed): start it from what was stored.
                await self.start(
                    TaskSubmitted(
                        task_id=run.task_id,
                        input=run.input,
                        agent=run.agent,
                        metadata=run.metadata,
                        submitted_by=run.submitted_by,
                    )
                )
            else:
                await self._start(run)
            count += 1
        return count


def _check_keys(value: Any, path: str = "metadata") -> None:
    """Stored documents cannot have keys MongoDB reads as operators or paths."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or key.startswith("$") or "." in key or "\0" in key:
                raise InvalidTask(f"{path}: key {key!r} may not start with '$' or contain '.'")
            _check_keys(item, f"{path}.{key}")
    elif isinstance(value, list):
        for item in value:
            _check_keys(item, path)
