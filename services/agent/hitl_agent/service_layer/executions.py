"""Tool execution at most once per tool call id, across duplicates, replicas and crashes.

The first attempt claims the call with a unique-key insert and records the result
when done. A later attempt (a redelivery after a crash, or a second replica) reuses
that result. If the first attempt never finished, the tool is not repeated and the
model is told the outcome is unknown.

An idempotent tool (its effects are keyed by the call, like the ledger's transfers)
needs no claim: a repeat has no effect of its own and returns the same result, and
the run's checkpoint records the result that counts. It is run straight away and
its outcome written once afterwards, for operators to see which worker ran what: one
insert, not a claim and an update, and off the decision's path (it goes to the store
while the run's checkpoint does; `settle` waits for what is in flight at shutdown).
"""

import asyncio
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from hitl_contracts.base import utcnow

from hitl_agent.domain.policy import PolicyArgs
from hitl_agent.service_layer.ports import RunStore
from hitl_agent.tools.registry import Execution, ExecutionKey, Tool, ToolError

log = logging.getLogger(__name__)

UNKNOWN_OUTCOME = (
    "Error: an earlier attempt of this action was interrupted and its outcome is unknown, "
    "so it was not repeated. Ask a human operator to check before trying again."
)


@dataclass(frozen=True)
class Outcome:
    result: str
    ok: bool


def crash_after(tool_name: str) -> Callable[[str], None]:
    """Test-only fault: die right after executing `tool_name`, before recording it."""

    def maybe_crash(executed: str) -> None:
        if executed == tool_name:
            log.error("fault injection: crashing after executing %s", executed)
            os._exit(70)

    return maybe_crash


class Executions:
    def __init__(
        self,
        store: RunStore,
        *,
        owner: str,
        wait_seconds: float = 30.0,
        after_execute: Callable[[str], None] | None = None,
    ) -> None:
        self.store = store
        self.owner = owner
        self.wait_seconds = wait_seconds
        self.after_execute = after_execute
        # Outcome records of idempotent calls still on their way to the store.
        self.recording: set[asyncio.Task[None]] = set()

    async def run(
        self,
        tool: Tool,
        key: ExecutionKey,
        args: PolicyArgs,
        *,
        preview: dict[str, object] | None = None,
    ) -> Outcome:
        if tool.idempotent:
            outcome = await self._outcome(tool, key, args, preview)
            self._record(str(key), tool.name, outcome)
            return outcome
        if await self.store.claim_execution(str(key), tool=tool.name, owner=self.owner):
            return await self._execute(tool, key, args, preview)
        # Someone else claimed it: give them time to finish (a replica racing us),
        # then assume they died (a crash before recording).
        done = await self._finished(str(key), patience=self.wait_seconds)
        if done is not None:
            return done
        log.error("call %s was interrupted and is not idempotent: not repeated", key)
        return Outcome(UNKNOWN_OUTCOME, ok=False)

    def _record(self, key: str, tool: str, outcome: Outcome) -> None:
        """Write an idempotent call's outcome beside the run's checkpoint, not before it.

        The record is for operators; the result that counts is in the checkpoint. A
        failed write is logged, and a crash before it lands leaves the checkpoint's copy.
        """

        async def record() -> None:
            try:
                await self.store.record_execution(
                    key, tool=tool, owner=self.owner, result=outcome.result, ok=outcome.ok
                )
            except Exception as exc:
                log.warning("outcome of %s not recorded for operators: %r", key, exc)

        task = asyncio.create_task(record())
        self.recording.add(task)
        task.add_done_callback(self.recording.discard)

    async def settle(self) -> None:
        """Wait for outcome records still in flight (at shutdown)."""
        await asyncio.gather(*self.recording, return_exceptions=True)

    async def _execute(
        self, tool: Tool, key: ExecutionKey, args: PolicyArgs, preview: dict[str, object] | None
    ) -> Outcome:
        outcome = await self._outcome(tool, key, args, preview)
        await self.store.finish_execution(str(key), result=outcome.result, ok=outcome.ok)
        return outcome

    async def _outcome(
        self, tool: Tool, key: ExecutionKey, args: PolicyArgs, preview: dict[str, object] | None
    ) -> Outcome:
        try:
            outcome = Outcome(await tool.execute(args, Execution(key, preview)), ok=True)
        except ToolError as exc:
            outcome = Outcome(f"Error: {exc}", ok=False)
        if self.after_execute is not None:
            self.after_execute(tool.name)
        return outcome

    async def _finished(self, key: str, *, patience: float) -> Outcome | None:
        """The recorded outcome, waiting until the claim is `patience` seconds old."""
        while True:
            doc = await self.store.execution(key)
            if doc is None:
                return None
            if doc.get("state") == "done":
                return Outcome(str(doc["result"]), ok=bool(doc["ok"]))
            claimed_at: datetime = doc["at"]
            if (utcnow() - claimed_at).total_seconds() >= patience:
                return None
            await asyncio.sleep(0.1)
