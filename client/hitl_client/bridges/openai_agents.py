"""OpenAI Agents SDK runs whose tools have `needs_approval`, decided in hitl.

    bridge = AgentsBridge(agent, hitl=AsyncClient(url, token), db=mongo["payables"])
    await bridge.start("invoice-4711", "Pay ACME invoice 4711")  # until done or paused
    await bridge.serve()  # any process, any time later: continue runs as they are decided

Each interruption of a run (`result.interruptions`) becomes one hitl approval with a
deterministic correlation id (bridge name, run id, the model's call id). The `RunState`
JSON is stored in MongoDB before any approval is asked for, so a run survives any
restart; once every approval of the pause is decided, one process (a leased, unique-key
claim) loads the state, applies each decision and continues the run:

- approved: `state.approve(item)`;
- modified: approved, and the bridge's guard around the tool runs it with the reviewer's
  signed arguments instead of the model's (the SDK has no argument editing). A tool the
  bridge does not guard is rejected instead, the message naming the edited arguments so
  the model may call again with them (that call is a new approval);
- rejected: `state.reject(item, rejection_message=...)` with the reviewer's words;
- expired or cancelled: rejected (fail closed, whatever `on_timeout` the request had).

Exactly once: a decision seen twice, or by two processes, continues the run once (the
step claim, then the unique snapshot of the next step). A guarded tool's effect is
recorded by a unique-key insert before it runs and with its result after: a copy of the
call after the result is stored returns that result without running the tool. A process
killed while the tool runs leaves the call "in doubt"; the next claimant runs it again
with the same `idempotency_key()`, so the effect happens once when the tool passes that
key to whatever it changes (a payment API's Idempotency-Key, a unique insert).

Requires the `openai-agents` extra (`openai-agents`, `pymongo`).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import dataclasses
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from agents import Agent, FunctionTool, RunConfig, Runner, RunState
from agents.items import ToolApprovalItem
from agents.tool_context import ToolContext
from pymongo.asynchronous.database import AsyncDatabase

from hitl_client.async_client import AsyncApproval, AsyncClient
from hitl_client.bridges._agents_store import RunStore
from hitl_client.errors import Conflict, WaitTimeout
from hitl_client.outcomes import Approved, Cancelled, Expired, Modified, Outcome, Rejected

__all__ = ["AgentsBridge", "PendingCall", "RunStatus", "idempotency_key"]

log = logging.getLogger("hitl_client.bridges.openai_agents")

Status = Literal["awaiting_approval", "running", "completed", "failed"]


@dataclass(frozen=True)
class PendingCall:
    """One interrupted tool call and the approval asked for it."""

    correlation_id: str
    call_id: str
    tool: str
    arguments: dict[str, Any]


@dataclass(frozen=True)
class RunStatus:
    """Where a run is: awaiting approvals (`pending`), continued by some process right now
    (`running`), or done (`completed` with `final_output`, `failed` with `error`)."""

    run_id: str
    step: int
    status: Status
    pending: tuple[PendingCall, ...] = ()
    final_output: Any = None
    error: str = ""

    @property
    def done(self) -> bool:
        return self.status in ("completed", "failed")


@dataclass(frozen=True)
class _Ruling:
    correlation_id: str
    allow: bool
    # The reviewer's arguments when they differ from the model's (a modify).
    arguments: dict[str, Any] | None = None
    message: str = ""


# The decisions of the step being continued, by the model's call id, for the tool guard.
_RULINGS: contextvars.ContextVar[Mapping[str, _Ruling] | None] = contextvars.ContextVar(
    "hitl_openai_agents_rulings", default=None
)
# The correlation id of the approved call whose tool is running.
_CALL: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "hitl_openai_agents_call", default=None
)


def idempotency_key() -> str | None:
    """Inside a guarded tool run on a hitl decision: a key unique to this call, the same
    on every re-run after a crash (its approval's correlation id). None elsewhere."""
    return _CALL.get()


class AgentsBridge:
    """Runs `agent` with hitl deciding its approvals; state in `db` (collections named
    `<prefix>runs`, `snapshots`, `claims`, `effects`).

    `hitl`'s token is the run's submitter: four-eyes keeps that account from deciding.
    `lease_seconds`: a step's claim lasts that long past its holder's last renewal
    (every third of it); a killed process's step is taken over after that.
    """

    def __init__(
        self,
        agent: Agent[Any],
        *,
        hitl: AsyncClient,
        db: AsyncDatabase[dict[str, Any]],
        name: str | None = None,
        reason: str | Callable[[PendingCall], str] = "{tool} needs approval (needs_approval)",
        risk_level: str | None = None,
        timeout: float = 1800.0,
        run_config: RunConfig | None = None,
        max_turns: int | None = None,
        lease_seconds: float = 120.0,
        collection_prefix: str = "openai_agents_",
    ) -> None:
        self.name = name or agent.name
        self.hitl = hitl
        self.reason = reason
        self.risk_level = risk_level
        self.timeout = timeout
        self.run_config = run_config
        self.max_turns = max_turns
        self.lease_seconds = lease_seconds
        self.store = RunStore(db, prefix=collection_prefix, lease_seconds=lease_seconds)
        self.guarded: dict[str, FunctionTool] = {}
        self.agent = agent.clone(tools=[self._guard(tool) for tool in agent.tools])
        self._schemas = {name: tool.params_json_schema for name, tool in self.guarded.items()}

    # -- public API ------------------------------------------------------------------

    def correlation_id(self, run_id: str, call_id: str) -> str:
        return f"openai-agents:{self.name}:{run_id}:{call_id}"

    async def start(
        self, run_id: str, input: str | list[Any], *, context: dict[str, Any] | None = None
    ) -> RunStatus:
        """Start run `run_id` (idempotent: again with the same id, the run as it stands) and
        take it as far as it goes without a human: done, or paused for approvals."""
        stored = await self.store.add_run(run_id, input, context)
        if stored is not None and stored.get("input") != input:
            raise ValueError(f"run {run_id!r} exists with another input")
        return await self.advance(run_id)

    async def status(self, run_id: str) -> RunStatus:
        head = await self.store.head(run_id)
        if head is None:
            return RunStatus(run_id, -1, "running")
        return _status_of(run_id, head)

    async def advance(self, run_id: str, *, wait: float = 0.0) -> RunStatus:
        """One step, if it can be taken now: wait up to `wait` seconds for the pause's
        decisions, then continue the run to its next pause or its end."""
        run = await self.store.run(run_id)
        if run is None:
            raise KeyError(f"no run {run_id!r}")
        head = await self.store.head(run_id)
        if head is not None and head["kind"] != "interrupted":
            if not run.get("closed"):
                # Stored, then a crash before the run was marked: `serve` stops visiting it.
                await self.store.close(run_id)
            return _status_of(run_id, head)
        rulings: dict[str, _Ruling] = {}
        if head is not None:
            pending = _calls_of(head)
            approvals = await self._ask(run_id, head, pending)
            deadline = time.monotonic() + wait
            for call, approval in zip(pending, approvals, strict=True):
                outcome = await _outcome(approval, deadline - time.monotonic())
                if outcome is None:
                    return _status_of(run_id, head)
                rulings[call.call_id] = self._rule(run_id, call, outcome)
        step = 0 if head is None else head["seq"] + 1
        claim = await self.store.claim(run_id, step)
        if claim is None:
            return RunStatus(run_id, step, "running")
        log.info("run %s: step %d claimed (%s)", run_id, step, claim)
        renewing = asyncio.create_task(self.store.renew(claim))
        try:
            return await self._continue(run_id, step, head, rulings)
        except BaseException:
            # Free the step for a retry now rather than after the lease.
            await self.store.release(claim)
            raise
        finally:
            renewing.cancel()

    async def finish(self, run_id: str, *, timeout: float | None = None) -> RunStatus:
        """Advance `run_id` until it is done; the last status after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            left = 60.0 if deadline is None else min(60.0, deadline - time.monotonic())
            status = await self.advance(run_id, wait=max(0.0, left))
            if status.done or (deadline is not None and time.monotonic() >= deadline):
                return status
            if status.status == "running":
                # Another process holds the step; it finishes or its lease runs out.
                await asyncio.sleep(min(1.0, self.lease_seconds / 4))

    async def serve(self, *, poll: float = 2.0, stop: asyncio.Event | None = None) -> None:
        """Continue every open run as its approvals are decided, until `stop` is set.
        Any number of processes may serve the same runs."""
        tasks: dict[str, asyncio.Task[None]] = {}
        stop = stop or asyncio.Event()
        try:
            while not stop.is_set():
                async for run_id in self.store.open_runs():
                    if run_id not in tasks or tasks[run_id].done():
                        tasks[run_id] = asyncio.create_task(self._drive(run_id))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=poll)
        finally:
            for task in tasks.values():
                task.cancel()
            await asyncio.gather(*tasks.values(), return_exceptions=True)

    async def ensure_indexes(self) -> None:
        await self.store.ensure_indexes()

    # -- steps -----------------------------------------------------------------------

    async def _drive(self, run_id: str) -> None:
        try:
            await self.finish(run_id)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("run %s: step failed; retried on the next poll", run_id)

    async def _continue(
        self, run_id: str, step: int, head: dict[str, Any] | None, rulings: dict[str, _Ruling]
    ) -> RunStatus:
        run = await self.store.run(run_id)
        assert run is not None
        seen: list[str] = []
        if head is None:
            result = await Runner.run(
                self.agent,
                run["input"],
                context=run.get("context"),
                run_config=self.run_config,
                **self._turns(),
            )
        else:
            seen = list(head.get("seen", []))
            state = await RunState.from_string(self.agent, head["state"])
            problem = self._apply(state, _calls_of(head), rulings)
            if problem:
                return await self._store(run_id, step, {"kind": "failed", "error": problem})
            token = _RULINGS.set(rulings)
            try:
                # No `context=` here: the state carries it (openai-agents-python#4244).
                result = await Runner.run(
                    self.agent, state, run_config=self.run_config, **self._turns()
                )
            finally:
                _RULINGS.reset(token)
        if not result.interruptions:
            output = _plain(result.final_output)
            return await self._store(run_id, step, {"kind": "completed", "final_output": output})
        calls = [self._pending(run_id, item) for item in result.interruptions]
        again = [c.call_id for c in calls if c.call_id in seen]
        if again:
            # The SDK asking again for a decided call would loop on the same decision.
            error = f"the run asked again for decided calls {again}; stopped (fail closed)"
            return await self._store(run_id, step, {"kind": "failed", "error": error})
        return await self._store(
            run_id,
            step,
            {
                "kind": "interrupted",
                "state": result.to_state().to_string(),
                "pending": [dataclasses.asdict(c) for c in calls],
                "seen": seen + [c.call_id for c in calls],
                "user_request": _text(run["input"]),
            },
        )

    async def _store(self, run_id: str, step: int, fields: dict[str, Any]) -> RunStatus:
        # A process that took over this step may have stored it first: its outcome stands.
        doc = await self.store.store(run_id, step, fields)
        log.info("run %s: step %d %s", run_id, doc["seq"], doc["kind"])
        if doc["kind"] == "interrupted":
            await self._ask(run_id, doc, _calls_of(doc))
        else:
            await self.store.close(run_id)
        return _status_of(run_id, doc)

    def _apply(
        self, state: RunState[Any], calls: Sequence[PendingCall], rulings: Mapping[str, _Ruling]
    ) -> str:
        """Apply each decision to its interruption; a reason to stop if they do not match."""
        items: dict[str, ToolApprovalItem] = {}
        for item in state.get_interruptions():
            items[item.call_id or ""] = item
        if set(items) != {c.call_id for c in calls}:
            # E.g. interruptions lost in the state's round trip (openai-agents-python#4264):
            # continuing would drop or re-ask decisions, so nothing runs.
            return f"the stored state's interruptions {sorted(items)} do not match the approvals"
        for call in calls:
            item, ruling = items[call.call_id], rulings[call.call_id]
            if ruling.allow and (ruling.arguments is None or call.tool in self.guarded):
                state.approve(item)
            elif ruling.allow:
                edited = json.dumps(ruling.arguments, sort_keys=True)
                message = (
                    f"A human reviewer did not approve these arguments, but would approve "
                    f"{call.tool} with {edited}. If you still want this, call {call.tool} "
                    f"again with exactly those arguments. {ruling.message}"
                ).strip()
                state.reject(item, rejection_message=message)
            else:
                state.reject(item, rejection_message=ruling.message)
        return ""

    def _rule(self, run_id: str, call: PendingCall, outcome: Outcome) -> _Ruling:
        """What a verified decision means for this call (anything that does not fit: no)."""
        decided, cid = outcome.decided, call.correlation_id
        if (
            decided.correlation_id != cid
            or decided.run_id != run_id
            or decided.tool not in ("", call.tool)
            or decided.tool_call_id not in ("", call.call_id)
        ):
            return _Ruling(cid, False, message="The decision does not match this call; not run.")
        who = outcome.reviewer
        match outcome:
            case Approved(arguments=args) | Modified(arguments=args):
                edited = None if args == call.arguments else dict(args)
                note = f"Reviewer {who}: {outcome.comment}" if outcome.comment else ""
                return _Ruling(cid, True, arguments=edited, message=note)
            case Rejected(comment=comment):
                why = comment or "no reason given"
                return _Ruling(cid, False, message=f"Rejected by reviewer {who}: {why}")
            case Expired():
                return _Ruling(
                    cid, False, message="No reviewer decided in time; the call was not run."
                )
            case Cancelled():
                return _Ruling(cid, False, message="The approval was cancelled; not run.")
        return _Ruling(cid, False, message="Unknown decision; not run.")

    # -- approvals -------------------------------------------------------------------

    def _pending(self, run_id: str, item: ToolApprovalItem) -> PendingCall:
        call_id = item.call_id or ""
        if not call_id:
            raise ValueError(f"interruption for {item.name!r} has no call id")
        try:
            arguments = json.loads(item.arguments or "{}")
        except ValueError:
            arguments = {"raw": item.arguments}
        if not isinstance(arguments, dict):
            arguments = {"value": arguments}
        tool = item.qualified_name or item.name or "unknown"
        return PendingCall(self.correlation_id(run_id, call_id), call_id, tool, arguments)

    async def _ask(
        self, run_id: str, snapshot: dict[str, Any], calls: Sequence[PendingCall]
    ) -> list[AsyncApproval]:
        """The approvals of a pause, created if they are not yet (same id, same content)."""
        approvals = []
        for call in calls:
            reason = self.reason(call) if callable(self.reason) else self.reason
            try:
                approval = await self.hitl.request(
                    tool=call.tool,
                    arguments=call.arguments,
                    reason=reason.format(tool=call.tool),
                    correlation_id=call.correlation_id,
                    run_id=run_id,
                    agent=self.name,
                    tool_call_id=call.call_id,
                    risk_level=self.risk_level,
                    context=snapshot.get("user_request") or run_id,
                    arguments_schema=self._schemas.get(call.tool),
                    timeout=self.timeout,
                    on_timeout="reject",
                )
            except Conflict:
                # Asked before with other settings (a restart with a new config): that one.
                approval = await self.hitl.resume(call.correlation_id)
            approvals.append(approval)
        return approvals

    # -- the tool guard --------------------------------------------------------------

    def _guard(self, tool: Any) -> Any:
        if not isinstance(tool, FunctionTool):
            return tool
        original = tool.on_invoke_tool
        bridge = self

        async def invoke(ctx: ToolContext[Any], arguments: str) -> Any:
            rulings = _RULINGS.get() or {}
            ruling = rulings.get(ctx.tool_call_id)
            if ruling is None:
                # No hitl decision covers this call: the SDK asked for no approval.
                return await original(ctx, arguments)
            if not ruling.allow:
                return ruling.message
            if ruling.arguments is not None:
                arguments = json.dumps(ruling.arguments)
                # The SDK may hold arguments it prepared for the model's version.
                ctx._function_tool_arguments = None
            result = await bridge._once(ruling.correlation_id, lambda: original(ctx, arguments))
            if ruling.arguments is not None and isinstance(result, str):
                return f"(run with the reviewer's edited arguments {arguments}) {result}"
            return result

        guarded = dataclasses.replace(tool, on_invoke_tool=invoke)
        self.guarded[guarded.name] = guarded
        return guarded

    async def _once(self, key: str, call: Callable[[], Awaitable[Any]]) -> Any:
        finished, result = await self.store.result_of(key)
        if finished:
            return result
        if not await self.store.mark_started(key):
            log.warning("call %s started before and never finished: running it again", key)
        token = _CALL.set(key)
        try:
            result = await call()
        finally:
            _CALL.reset(token)
        await self.store.mark_done(key, _plain(result))
        return result

    def _turns(self) -> dict[str, Any]:
        return {} if self.max_turns is None else {"max_turns": self.max_turns}


async def _outcome(approval: AsyncApproval, wait: float) -> Outcome | None:
    try:
        if approval.state.terminal:
            return await approval.wait()
        return await approval.wait(timeout=max(0.0, wait)) if wait > 0 else None
    except WaitTimeout:
        return None


def _calls_of(snapshot: dict[str, Any]) -> list[PendingCall]:
    return [PendingCall(**c) for c in snapshot.get("pending", [])]


def _status_of(run_id: str, snapshot: dict[str, Any]) -> RunStatus:
    kind = snapshot["kind"]
    status: Status = "awaiting_approval" if kind == "interrupted" else kind
    return RunStatus(
        run_id,
        snapshot["seq"],
        status,
        pending=tuple(_calls_of(snapshot)),
        final_output=snapshot.get("final_output"),
        error=snapshot.get("error", ""),
    )


def _plain(value: Any) -> Any:
    """`value` if it is JSON, else its text (what a store and a reviewer can hold)."""
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return str(value)
    return value


def _text(input: Any) -> str:
    return input if isinstance(input, str) else json.dumps(input)[:2000]
