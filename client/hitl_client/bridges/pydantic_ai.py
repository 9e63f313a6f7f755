"""Pydantic AI agents whose tools need approval, decided in hitl (extra `pydantic-ai`).

    agent = Agent(model, output_type=[str, DeferredToolRequests])

    @agent.tool(requires_approval=True)
    async def transfer(ctx: RunContext[None], to_account: str, amount: float) -> str:
        return bank.pay(to_account, amount, idempotency_key=idempotency_key(ctx))

    bridge = PydanticAIBridge(agent, hitl=AsyncClient(url, token), db=mongo["payables"],
                              name="payables", idempotent={"transfer"})
    await bridge.start("conversation-1", "Pay ACME 1200")   # pauses: one approval per call
    await bridge.serve()                                     # continues each once decided

A run that ends with `DeferredToolRequests` is stored (its whole message history, as
`ModelMessagesTypeAdapter` JSON) as a checkpoint in MongoDB, and each call in
`approvals` becomes a hitl approval whose correlation id is derived from the
conversation id and the tool call id. Once every approval of the turn is decided, the
run continues with `DeferredToolResults`: approve -> `ToolApproved()`, modify ->
`ToolApproved(override_args=<the reviewer's arguments>)`, reject -> `ToolDenied(<the
reviewer's comment>)`, expiry or cancellation -> `ToolDenied` (fail closed: the tool
does not run). Decisions are verified against the service's signing keys (the
client's `verify`) and against the call they answer.

Exactly once, precisely: checkpoints are an append-only stream (`_id`
`["<conversation>",<seq>]`, a unique-key insert), so a turn is continued by one process
however often a decision arrives; a step is claimed by a lease (unique insert per
attempt) before it runs, so concurrent resumers do not both run it. Every tool call
runs under a marker `["<conversation>","<tool_call_id>"]` claimed by a unique insert before
the tool is called and holding its result after: a call whose result is recorded is
never run again (the recorded result is replayed). A call whose process died between
the claim and the record is run again only if the tool is listed in `idempotent`
(it must make its effect once per `idempotency_key(ctx)`), otherwise the model is told
its outcome is unknown and it is not repeated. So: an approved call's effect happens
at most once by the bridge, and exactly once when the tool is idempotent by its key.
"""

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic_ai import (
    Agent,
    DeferredToolRequests,
    DeferredToolResults,
    RunContext,
    ToolApproved,
    ToolDenied,
)
from pydantic_ai.capabilities import AbstractCapability, ValidatedToolArgs, WrapToolExecuteHandler
from pydantic_ai.messages import ModelMessage, ModelMessagesTypeAdapter, ToolCallPart
from pydantic_ai.tools import ToolDefinition
from pydantic_core import to_jsonable_python
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from hitl_client.async_client import AsyncClient
from hitl_client.errors import HitlError, WaitTimeout
from hitl_client.outcomes import Approved, Modified, Outcome, Rejected

__all__ = [
    "ApprovalPolicy",
    "BridgeError",
    "PydanticAIBridge",
    "Turn",
    "correlation_id",
    "idempotency_key",
]

log = logging.getLogger("hitl_client.bridges.pydantic_ai")

Status = Literal["running", "awaiting_approval", "completed"]
Document = dict[str, Any]


class BridgeError(HitlError):
    """The bridge cannot continue a conversation (unknown id, an external deferred call)."""


@dataclass(frozen=True)
class ApprovalPolicy:
    """What a tool's approvals carry: shown to reviewers, enforced by the approval service."""

    reason: str | None = None
    risk_level: str | None = None
    timeout: float | None = None  # seconds; the service's default (30 minutes) when None
    arguments_schema: Mapping[str, Any] | None = None
    edit_policy: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class Turn:
    """Where a conversation stands: waiting for `approvals`, `completed` with `output`, or
    `running` (another process is continuing it)."""

    conversation_id: str
    status: Status
    seq: int
    output: Any = None
    approvals: tuple[str, ...] = ()


def correlation_id(name: str, conversation_id: str, tool_call_id: str) -> str:
    """The approval's id for one tool call: the same call always asks the same approval."""
    digest = hashlib.sha256(json.dumps([name, conversation_id, tool_call_id]).encode())
    return f"pydantic-ai-{digest.hexdigest()[:40]}"


def idempotency_key(ctx: RunContext[Any]) -> str:
    """The key a tool should make its effect once under: one per conversation and call.

    A hash, so that no choice of conversation id or (model-chosen) tool call id can make
    two calls share a key."""
    digest = hashlib.sha256(json.dumps([ctx.conversation_id, ctx.tool_call_id]).encode())
    return f"call-{digest.hexdigest()[:40]}"


@dataclass
class _Pending:
    tool_call_id: str
    tool: str
    arguments: dict[str, Any]
    correlation_id: str
    # The request's other fields, fixed when the call is checkpointed: any process (with
    # any policies) asks again with the same content, which the service answers with the
    # same approval instead of a 409.
    request: dict[str, Any] = field(default_factory=dict)

    def doc(self) -> Document:
        return {
            "tool_call_id": self.tool_call_id,
            "tool": self.tool,
            "arguments": self.arguments,
            "correlation_id": self.correlation_id,
            "request": self.request,
        }


@dataclass
class _Checkpoint:
    conversation_id: str
    seq: int
    status: Status
    prompt: str
    requested_by: str | None
    messages: list[ModelMessage] = field(default_factory=list)
    pending: list[_Pending] = field(default_factory=list)
    output: Any = None

    @classmethod
    def of(cls, doc: Document) -> "_Checkpoint":
        raw = doc.get("messages") or "[]"
        return cls(
            conversation_id=doc["conversation_id"],
            seq=doc["seq"],
            status=doc["status"],
            prompt=doc["prompt"],
            requested_by=doc.get("requested_by"),
            messages=ModelMessagesTypeAdapter.validate_json(raw),
            pending=[_Pending(**p) for p in doc.get("pending", [])],
            output=doc.get("output"),
        )

    def doc(self) -> Document:
        return {
            "_id": _step_id(self.conversation_id, self.seq),
            "conversation_id": self.conversation_id,
            "seq": self.seq,
            "status": self.status,
            "prompt": self.prompt,
            "requested_by": self.requested_by,
            # JSON text, as Pydantic AI writes it: exactly what its adapter reads back.
            "messages": ModelMessagesTypeAdapter.dump_json(self.messages).decode(),
            "pending": [p.doc() for p in self.pending],
            "output": self.output,
            "stored_at": datetime.now(UTC),
        }

    def turn(self) -> Turn:
        return Turn(
            conversation_id=self.conversation_id,
            status=self.status,
            seq=self.seq,
            output=self.output,
            approvals=tuple(p.correlation_id for p in self.pending),
        )


def _key(*parts: str | int) -> str:
    """A document id of several parts, unambiguous whatever the parts contain (a tool call
    id is the model's choice)."""
    return json.dumps(parts, separators=(",", ":"))


def _step_id(conversation_id: str, seq: int) -> str:
    return _key(conversation_id, seq)


class _Busy(Exception):
    """Another live process is running this step's tool call; leave the step to it."""


class PydanticAIBridge:
    """Runs a Pydantic AI agent's conversations, pausing on deferred approvals in hitl.

    `name` names the agent to reviewers and keeps correlation ids apart between bridges;
    `instance` names this process (a restarted process with the same name takes over its
    own unfinished steps at once, others' only after `lease_seconds`); `deps` builds the
    agent's dependencies for a conversation.
    """

    def __init__(
        self,
        agent: Agent[Any, Any],
        *,
        hitl: AsyncClient,
        db: AsyncDatabase[Document],
        name: str,
        policies: Mapping[str, ApprovalPolicy] | None = None,
        idempotent: Collection[str] = (),
        deps: Callable[[str], Any] | None = None,
        instance: str | None = None,
        lease_seconds: float = 300.0,
        collection_prefix: str = "pydantic_ai_",
    ) -> None:
        self.agent = agent
        self.hitl = hitl
        self.name = name
        self.policies = dict(policies or {})
        self.idempotent = frozenset(idempotent)
        self.deps = deps
        self.instance = instance or os.environ.get("HITL_BRIDGE_INSTANCE") or socket.gethostname()
        self.boot = uuid.uuid4().hex
        self.lease_seconds = lease_seconds
        self.steps = db[f"{collection_prefix}steps"]
        self.active = db[f"{collection_prefix}active"]
        self.claims = db[f"{collection_prefix}claims"]
        self.effects = db[f"{collection_prefix}effects"]
        self._running: set[str] = set()
        # Checkpoints whose approvals this process has already created (idempotent anyway).
        self._asked: set[str] = set()

    # -- the public operations ------------------------------------------------------

    async def start(
        self, conversation_id: str, prompt: str, *, requested_by: str | None = None
    ) -> Turn:
        """Start a conversation and run it until it ends or pauses for approvals.

        Idempotent: the same id again returns where that conversation stands.
        `requested_by` names the person who asked (only an admin token may name someone
        else; by default the submitter is the bridge's token, and four-eyes keeps it from
        approving).
        """
        first = _Checkpoint(conversation_id, 0, "running", prompt, requested_by)
        # Listed as open before the first checkpoint exists, so `serve` finds it after a
        # crash in between; a conversation found completed is unlisted again by `resume`.
        with contextlib.suppress(DuplicateKeyError):
            await self.active.insert_one({"_id": conversation_id, "seq": 0})
        with contextlib.suppress(DuplicateKeyError):
            await self.steps.insert_one(first.doc())
        return await self.resume(conversation_id, wait=0)

    async def resume(self, conversation_id: str, *, wait: float | None = 0) -> Turn:
        """Continue the conversation as far as its decisions allow.

        Waits up to `wait` seconds (None: without limit) for the turn's approvals to be
        decided. Safe to call any number of times, from any process.
        """
        while True:
            checkpoint = await self._latest(conversation_id)
            if checkpoint.status == "completed":
                await self.active.delete_one({"_id": conversation_id})
                return checkpoint.turn()
            results: DeferredToolResults | None = None
            if checkpoint.status == "awaiting_approval":
                await self._ask(checkpoint)
                results = await self._results(checkpoint, wait)
                if results is None:
                    return checkpoint.turn()
            advanced = await self._step(checkpoint, results)
            if advanced is None:  # another process holds this step
                return dataclasses.replace(checkpoint.turn(), status="running")
            if advanced.status == "awaiting_approval":
                await self._ask(advanced)
                if wait == 0:
                    return advanced.turn()

    async def turn(self, conversation_id: str) -> Turn:
        return (await self._latest(conversation_id)).turn()

    async def serve(self, *, idle: float = 1.0, wait: float = 30.0) -> None:
        """Continue every open conversation as its decisions arrive; runs until cancelled.

        One task per open conversation long-polls its approvals; a failing step is
        retried after a second, then after twice as long each time, up to a minute.
        """
        tasks: dict[str, asyncio.Task[None]] = {}
        try:
            while True:
                async for doc in self.active.find({}, {"_id": 1}):
                    cid = str(doc["_id"])
                    if cid not in tasks or tasks[cid].done():
                        tasks[cid] = asyncio.create_task(self._follow(cid, wait))
                await asyncio.sleep(idle)
        finally:
            for task in tasks.values():
                task.cancel()
            await asyncio.gather(*tasks.values(), return_exceptions=True)

    # -- steps ------------------------------------------------------------------------

    async def _follow(self, conversation_id: str, wait: float) -> None:
        delay = 1.0
        while True:
            try:
                turn = await self.resume(conversation_id, wait=wait)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception(
                    "conversation %s: step failed; retrying in %.0fs", conversation_id, delay
                )
                await asyncio.sleep(delay)
                delay = min(60.0, delay * 2)
                continue
            delay = 1.0
            if turn.status == "completed":
                return
            if turn.status == "running":  # another process holds the step: look again later
                await asyncio.sleep(min(self.lease_seconds, 5.0))

    async def _latest(self, conversation_id: str) -> _Checkpoint:
        hint = await self.active.find_one({"_id": conversation_id})
        seq = int(hint.get("seq", 0)) if hint else 0
        doc = await self.steps.find_one({"_id": _step_id(conversation_id, seq)})
        if doc is None and seq:
            seq, doc = 0, await self.steps.find_one({"_id": _step_id(conversation_id, 0)})
        if doc is None:
            raise BridgeError(f"no conversation {conversation_id!r}")
        # The hint may lag (it is written after the checkpoint): probe forward by _id.
        while later := await self.steps.find_one({"_id": _step_id(conversation_id, seq + 1)}):
            seq, doc = seq + 1, later
        return _Checkpoint.of(doc)

    async def _step(
        self, checkpoint: _Checkpoint, results: DeferredToolResults | None
    ) -> _Checkpoint | None:
        """Run the agent from `checkpoint` and store what follows; None if someone else is."""
        key = _step_id(checkpoint.conversation_id, checkpoint.seq)
        if not await self._claim(key):
            return None
        self._running.add(key)
        try:
            capability = _ExactlyOnce(self, checkpoint, results)
            if results is None:
                result = await self.agent.run(
                    checkpoint.prompt,
                    conversation_id=checkpoint.conversation_id,
                    deps=self._deps(checkpoint.conversation_id),
                    capabilities=[capability],
                )
            else:
                result = await self.agent.run(
                    message_history=checkpoint.messages,
                    deferred_tool_results=results,
                    conversation_id=checkpoint.conversation_id,
                    deps=self._deps(checkpoint.conversation_id),
                    capabilities=[capability],
                )
        except (_Busy, BaseExceptionGroup) as exc:
            # Parallel tool calls raise from a task group: a group of nothing but _Busy
            # is the same as one.
            if isinstance(exc, BaseExceptionGroup) and exc.split(_Busy)[1] is not None:
                raise
            return None
        finally:
            self._running.discard(key)
        following = self._following(checkpoint, result.all_messages(), result.output)
        try:
            await self.steps.insert_one(following.doc())
        except DuplicateKeyError:
            # Another process stored this step first; theirs stands.
            return await self._latest(checkpoint.conversation_id)
        if following.status == "completed":
            await self.active.delete_one({"_id": checkpoint.conversation_id})
        else:
            await self.active.update_one(
                {"_id": checkpoint.conversation_id}, {"$set": {"seq": following.seq}}
            )
        return following

    def _following(
        self, checkpoint: _Checkpoint, messages: list[ModelMessage], output: Any
    ) -> _Checkpoint:
        base = _Checkpoint(
            checkpoint.conversation_id,
            checkpoint.seq + 1,
            "completed",
            checkpoint.prompt,
            checkpoint.requested_by,
            messages,
        )
        if not isinstance(output, DeferredToolRequests):
            base.output = to_jsonable_python(output, fallback=str)
            return base
        if output.calls:
            names = ", ".join(sorted({c.tool_name for c in output.calls}))
            raise BridgeError(f"external deferred calls ({names}) are not approvals; not bridged")
        ids = [c.tool_call_id for c in output.approvals]
        if len(set(ids)) != len(ids):
            # One decision would bind to two calls: refuse rather than guess.
            raise BridgeError(f"duplicate tool call ids in one turn: {sorted(ids)}")
        base.status = "awaiting_approval"
        base.pending = [
            _Pending(
                c.tool_call_id,
                c.tool_name,
                c.args_as_dict(),
                correlation_id(self.name, checkpoint.conversation_id, c.tool_call_id),
                self._request_fields(c.tool_name),
            )
            for c in output.approvals
        ]
        return base

    def _request_fields(self, tool: str) -> dict[str, Any]:
        policy = self.policies.get(tool, ApprovalPolicy())
        fields = {
            "reason": policy.reason or f"{tool} requires approval",
            "risk_level": policy.risk_level,
            "timeout": policy.timeout,
            "arguments_schema": dict(policy.arguments_schema) if policy.arguments_schema else None,
            "edit_policy": dict(policy.edit_policy) if policy.edit_policy else None,
        }
        return {k: v for k, v in fields.items() if v is not None}

    def _deps(self, conversation_id: str) -> Any:
        return self.deps(conversation_id) if self.deps is not None else None

    async def _claim(self, step: str) -> bool:
        """Lease `step` for this process: a unique insert per attempt, so one taker wins."""
        attempt = 0
        while (held := await self.claims.find_one({"_id": _key(step, attempt)})) is not None:
            if not self._dead(held, step):
                return False
            attempt += 1
        try:
            await self.claims.insert_one(
                {
                    "_id": _key(step, attempt),
                    "instance": self.instance,
                    "boot": self.boot,
                    "at": time.time(),
                }
            )
        except DuplicateKeyError:
            return False
        return True

    def _dead(self, claim: Document, step: str) -> bool:
        if claim["boot"] == self.boot:
            return step not in self._running  # this process's own attempt, which ended
        if claim["instance"] == self.instance:
            return True  # an earlier life of this instance: it is gone
        return bool(time.time() - float(claim["at"]) > self.lease_seconds)

    # -- approvals ------------------------------------------------------------------

    async def _ask(self, checkpoint: _Checkpoint) -> None:
        key = _step_id(checkpoint.conversation_id, checkpoint.seq)
        if key in self._asked:
            return
        await asyncio.gather(*(self._request(checkpoint, p) for p in checkpoint.pending))
        self._asked.add(key)

    async def _request(self, checkpoint: _Checkpoint, pending: _Pending) -> None:
        fields = dict(pending.request)
        await self.hitl.request(
            tool=pending.tool,
            arguments=pending.arguments,
            reason=fields.pop("reason", f"{pending.tool} requires approval"),
            correlation_id=pending.correlation_id,
            run_id=checkpoint.conversation_id,
            agent=self.name,
            context={"user_request": checkpoint.prompt},
            tool_call_id=pending.tool_call_id,
            requested_by=checkpoint.requested_by,
            **fields,
        )

    async def _results(
        self, checkpoint: _Checkpoint, wait: float | None
    ) -> DeferredToolResults | None:
        """The turn's decisions as DeferredToolResults, once all are in; else None."""

        async def one(pending: _Pending) -> Outcome | None:
            approval = await self.hitl.resume(pending.correlation_id)
            try:
                return await approval.wait(timeout=wait)
            except WaitTimeout:
                return None

        outcomes = await asyncio.gather(*(one(p) for p in checkpoint.pending))
        if any(o is None for o in outcomes):
            return None
        results = DeferredToolResults()
        for pending, outcome in zip(checkpoint.pending, outcomes, strict=True):
            assert outcome is not None
            results.approvals[pending.tool_call_id] = _approval_of(pending, outcome)
            results.answered_by[pending.tool_call_id] = outcome.reviewer
        return results


def _approval_of(pending: _Pending, outcome: Outcome) -> ToolApproved | ToolDenied:
    """The decision as Pydantic AI takes it; anything unexpected denies (fail closed)."""
    decided = outcome.decided
    if (decided.tool, decided.tool_call_id) != (pending.tool, pending.tool_call_id):
        log.error("decision %s does not answer call %s", decided.correlation_id, pending)
        return ToolDenied("The decision did not match this call, so it was not run.")
    match outcome:
        case Modified(arguments=arguments):
            return ToolApproved(override_args=dict(arguments))
        case Approved(arguments=arguments):
            if arguments and arguments != pending.arguments:
                return ToolDenied("The approval named other arguments, so the call was not run.")
            return ToolApproved()
        case Rejected(reviewer=reviewer, comment=comment):
            said = f": {comment}" if comment else "."
            return ToolDenied(f"The human reviewer {reviewer} rejected this call{said}")
    status = decided.decision.value
    return ToolDenied(f"No approval ({status}): the call was not run.")


class _ExactlyOnce(AbstractCapability[Any]):
    """Runs each tool call under a durable marker; checks approved calls run as approved."""

    def __init__(
        self,
        bridge: "PydanticAIBridge",
        checkpoint: _Checkpoint,
        results: DeferredToolResults | None,
    ) -> None:
        self.bridge = bridge
        self.conversation_id = checkpoint.conversation_id
        self.approved: dict[str, dict[str, Any]] = {}
        for pending in checkpoint.pending:
            decision = results.approvals.get(pending.tool_call_id) if results else None
            if isinstance(decision, ToolApproved):
                self.approved[pending.tool_call_id] = decision.override_args or pending.arguments

    async def wrap_tool_execute(
        self,
        ctx: RunContext[Any],
        *,
        call: ToolCallPart,
        tool_def: ToolDefinition,
        args: ValidatedToolArgs,
        handler: WrapToolExecuteHandler,
    ) -> Any:
        approved = self.approved.get(call.tool_call_id)
        given = to_jsonable_python(args, fallback=str)
        if approved is not None and (
            not isinstance(given, dict) or any(given.get(k) != v for k, v in approved.items())
        ):
            # Something between approval and execution changed the arguments
            # (pydantic/pydantic-ai#6968): run only what the reviewer saw.
            return "Refused: the arguments differ from the approved ones; the call was not run."
        return await _once(self.bridge, self.conversation_id, call, lambda: handler(args))


async def _once(
    bridge: "PydanticAIBridge",
    conversation_id: str,
    call: ToolCallPart,
    run: Callable[[], Awaitable[Any]],
) -> Any:
    key = _key(conversation_id, call.tool_call_id)
    marker = await bridge.effects.find_one({"_id": key})
    if marker is not None and "result" in marker:
        return marker["result"]  # it ran: replay its result, never run it again
    if marker is None:
        try:
            await bridge.effects.insert_one(
                {"_id": key, "tool": call.tool_name, "boot": bridge.boot, "at": time.time()}
            )
        except DuplicateKeyError:
            raise _Busy(key) from None
    elif call.tool_name not in bridge.idempotent:
        # Claimed by a process that died before recording a result: the effect may or
        # may not have happened, and this tool cannot be run twice safely.
        return (
            f"The outcome of this {call.tool_name} call is unknown (the process running it "
            "stopped); it was not repeated."
        )
    try:
        result = await run()
    except Exception:
        # The tool raised (ModelRetry, an error): by contract its effect did not happen, so
        # the call may be tried again. A cancellation keeps the marker: outcome unknown.
        await bridge.effects.delete_one({"_id": key})
        raise
    await bridge.effects.update_one(
        {"_id": key}, {"$set": {"result": to_jsonable_python(result, fallback=str)}}
    )
    return result
