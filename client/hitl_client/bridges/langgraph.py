"""LangGraph's human-in-the-loop pauses, decided in hitl (extra `hitl-client[langgraph]`).

    bridge = LangGraphBridge(graph, hitl=AsyncClient(url, token), db=mongo["payables"],
                             agent="payables", owner="payables-bridge-1")
    await bridge.start("thread-7", {"messages": [{"role": "user", "content": "Pay ACME"}]})
    await bridge.serve()  # resumes each thread once all of its approvals are decided

Every pending interrupt of a thread becomes hitl approvals: one per tool call, with a
correlation id derived from (agent, thread id, interrupt id, position), so a re-run asks
nothing twice. Understood interrupt values: `HumanInTheLoopMiddleware`'s `per_call`
(`ToolApprovalRequest`, one interrupt per call) and `batched` (`HITLRequest`, one
interrupt listing the calls), and a hand-written `interrupt({"tool": ..., "arguments":
...})`. Once every approval of the pause is decided, the thread resumes with one
`Command(resume={interrupt_id: decision, ...})`: approved → approve, modified → edit
with the reviewer's arguments, rejected → reject with the reviewer's comment, expired or
cancelled → reject (fail closed: the tool does not run).

Exactly once: a resume is claimed by inserting `<thread>:<checkpoint>#<attempt>` into
`langgraph_claims` (a unique `_id`, atomic on MongoDB and FerretDB); the holder
re-reads the thread, resumes it, and renews its lease while it runs. A second copy of a
decision, or a second bridge, finds the claim or a moved checkpoint and does nothing. A
bridge killed mid-resume leaves its claim: the same `owner` restarted takes it over at
once, another owner after `lease_seconds`; LangGraph then re-runs the interrupted node,
so a tool whose effect may have happened must key it by its tool call id (see
`record_once`).
"""

import asyncio
import contextlib
import hashlib
import itertools
import logging
import os
import socket
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from langgraph.types import Command, Interrupt, StateSnapshot
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from hitl_client.async_client import AsyncClient
from hitl_client.errors import Conflict, HitlError
from hitl_client.outcomes import Approved, Modified, Outcome, Rejected

__all__ = ["Ask", "LangGraphBridge", "UnsupportedInterrupt", "asks_of", "record_once"]

log = logging.getLogger("hitl_client.bridges.langgraph")

THREADS = "langgraph_threads"
CLAIMS = "langgraph_claims"
NOT_RUN = "No reviewer decided in time (hitl approval {status}); the call was not run."

Doc = dict[str, Any]


class UnsupportedInterrupt(HitlError):
    """An interrupt whose value names no tool call: the bridge cannot ask about it."""


class _NotYet(Exception):
    """Some approval of the pause is still pending: release the claim unfinished."""


@dataclass(frozen=True)
class Ask:
    """One approval to ask for: one tool call of one interrupt."""

    correlation_id: str
    interrupt_id: str
    index: int
    batched: bool
    tool: str
    arguments: dict[str, Any]
    reason: str
    tool_call_id: str | None
    editable: bool
    arguments_schema: dict[str, Any] | None


def correlation_id(agent: str, thread_id: str, interrupt_id: str, index: int) -> str:
    # Hashed: thread ids are the application's, of any length and alphabet.
    digest = hashlib.sha256(f"{agent}\0{thread_id}\0{interrupt_id}\0{index}".encode())
    return f"lg-{digest.hexdigest()[:40]}"


def _per_call_allows_edit(schema: Any) -> tuple[bool, dict[str, Any] | None]:
    """From a per-call interrupt's `response_schema`: may it be edited, and the args' schema."""
    if not isinstance(schema, dict):
        return True, None
    mapping = schema.get("discriminator", {}).get("mapping")
    editable = "edit" in mapping if isinstance(mapping, dict) else "EditDecision" in str(schema)
    defs = schema.get("$defs", {})
    args = defs.get("EditedAction", {}).get("properties", {}).get("args", {})
    ref = args.get("$ref", "") if isinstance(args, dict) else ""
    found = defs.get(ref.rsplit("/", 1)[-1]) if ref else None
    return editable, found if isinstance(found, dict) else None


def asks_of(agent: str, thread_id: str, interrupt: Interrupt) -> list[Ask]:
    """The approvals one interrupt needs, in the order its resume value lists them."""
    value = interrupt.value
    if not isinstance(value, dict):
        raise UnsupportedInterrupt(f"interrupt {interrupt.id}: value {value!r} names no tool call")

    def ask(index: int, batched: bool, tool: Any, args: Any, reason: Any, **more: Any) -> Ask:
        if not isinstance(tool, str) or not isinstance(args, dict):
            raise UnsupportedInterrupt(f"interrupt {interrupt.id}: no tool name and arguments")
        return Ask(
            correlation_id=correlation_id(agent, thread_id, interrupt.id, index),
            interrupt_id=interrupt.id,
            index=index,
            batched=batched,
            tool=tool,
            arguments=dict(args),
            reason=str(reason or f"{tool} needs a human's approval"),
            tool_call_id=more.get("tool_call_id"),
            editable=more.get("editable", True),
            arguments_schema=more.get("arguments_schema"),
        )

    if value.get("type") == "tool_approval":  # HumanInTheLoopMiddleware(interrupt_mode="per_call")
        editable, schema = _per_call_allows_edit(interrupt.response_schema)
        return [
            ask(
                0,
                False,
                value.get("name"),
                value.get("args"),
                value.get("description"),
                tool_call_id=value.get("tool_call_id"),
                editable=editable,
                arguments_schema=schema,
            )
        ]
    if isinstance(value.get("action_requests"), list):  # HumanInTheLoopMiddleware, batched
        configs = value.get("review_configs") or []
        asks = []
        for index, action in enumerate(value["action_requests"]):
            config = configs[index] if index < len(configs) else {}
            allowed = config.get("allowed_decisions", ["approve", "edit", "reject"])
            asks.append(
                ask(
                    index,
                    True,
                    action.get("name"),
                    action.get("args"),
                    action.get("description"),
                    editable="edit" in allowed,
                )
            )
        return asks
    # A hand-written `interrupt({"tool": ..., "arguments": ..., "reason": ...})`.
    return [
        ask(
            0,
            False,
            value.get("tool"),
            value.get("arguments", value.get("args")),
            value.get("reason"),
            tool_call_id=value.get("tool_call_id"),
        )
    ]


def decision_for(ask: Ask, outcome: Outcome) -> dict[str, Any]:
    """The middleware's decision (`approve` / `edit` / `reject`) for hitl's outcome."""
    match outcome:
        case Approved():
            return {"type": "approve"}
        case Modified(arguments=args):
            return {"type": "edit", "edited_action": {"name": ask.tool, "args": dict(args)}}
        case Rejected(comment=why):
            return {"type": "reject", "message": why or f"rejected by {outcome.reviewer}"}
    # Expired or cancelled: fail closed, whatever the request's on_timeout said.
    return {"type": "reject", "message": NOT_RUN.format(status=outcome.decided.decision.value)}


def resume_map(asks: list[Ask], outcomes: Mapping[str, Outcome]) -> dict[str, Any]:
    """`Command(resume=...)`'s map: each interrupt id to its value (a batched one: all its calls)."""
    resume: dict[str, Any] = {}
    for ask in asks:
        decision = decision_for(ask, outcomes[ask.correlation_id])
        if ask.batched:
            resume.setdefault(ask.interrupt_id, {"decisions": []})["decisions"].append(decision)
        else:
            resume[ask.interrupt_id] = decision
    return resume


async def record_once(
    collection: AsyncCollection[Doc], key: str, document: Mapping[str, Any]
) -> bool:
    """Insert `document` under `_id=key` unless there already is one: an effect kept in
    MongoDB happens once however often the tool re-runs. True if this call recorded it."""
    try:
        await collection.insert_one({**document, "_id": key})
    except DuplicateKeyError:
        return False
    return True


def _first_user_message(snapshot: StateSnapshot) -> str:
    values = snapshot.values if isinstance(snapshot.values, dict) else {}
    for message in values.get("messages", []):
        if getattr(message, "type", None) == "human":
            return str(message.content)
    return ""


class LangGraphBridge:
    """Runs a compiled graph (with a checkpointer) and lets hitl decide its interrupts.

    `hitl`'s token is the submitter: four-eyes keeps that account from approving what the
    bridge asked. `owner` names this bridge process across restarts (default host:pid;
    set a stable one so a restarted bridge takes over its own unfinished resumes at once).
    """

    def __init__(
        self,
        graph: Any,
        *,
        hitl: AsyncClient,
        db: AsyncDatabase[Doc],
        agent: str,
        owner: str | None = None,
        timeout: float | timedelta | None = None,
        risk_level: str | None = None,
        edit_policies: Mapping[str, Mapping[str, Any]] | None = None,
        context: Callable[[StateSnapshot], Mapping[str, Any]] | None = None,
        lease_seconds: float = 30.0,
        poll_seconds: float = 2.0,
    ) -> None:
        self.graph = graph
        self.hitl = hitl
        self.agent = agent
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}"
        self.timeout = timeout
        self.risk_level = risk_level
        self.edit_policies = dict(edit_policies or {})
        self.context = context
        self.lease_seconds = lease_seconds
        self.poll_seconds = poll_seconds
        self.threads: AsyncCollection[Doc] = db[THREADS]
        self.claims: AsyncCollection[Doc] = db[CLAIMS]
        self._held: set[str] = set()

    @staticmethod
    def config(thread_id: str) -> dict[str, Any]:
        return {"configurable": {"thread_id": thread_id}}

    async def start(self, thread_id: str, input: Any) -> list[str]:
        """Run a new thread until it ends or pauses, and ask hitl about its pause.

        Again for a thread that already ran: no second run, only the asking (idempotent).
        Returns the correlation ids of the approvals the thread waits for.
        """
        async with self._claim(f"{thread_id}:start") as held:
            if held:
                snapshot = await self.graph.aget_state(self.config(thread_id))
                if snapshot.created_at is None:
                    await self.graph.ainvoke(input, self.config(thread_id))
                elif snapshot.next and not snapshot.interrupts:
                    # A start that died mid-run (our claim, taken over): carry on from
                    # its last checkpoint rather than send the input a second time.
                    await self.graph.ainvoke(None, self.config(thread_id))
        return await self.sync(thread_id)

    async def sync(self, thread_id: str) -> list[str]:
        """Ask hitl about every interrupt the thread is paused on (idempotent)."""
        snapshot = await self.graph.aget_state(self.config(thread_id))
        if not snapshot.interrupts:
            if not snapshot.next:  # finished; a thread mid-run keeps its entry
                await self.threads.delete_one({"_id": thread_id})
            return []
        asks = self._asks(thread_id, snapshot)
        for ask in asks:
            await self._request(thread_id, ask, snapshot)
        approvals = [a.correlation_id for a in asks]
        await self.threads.replace_one(
            {"_id": thread_id},
            {"checkpoint_id": _checkpoint_of(snapshot), "approvals": approvals},
            upsert=True,
        )
        return approvals

    def _asks(self, thread_id: str, snapshot: StateSnapshot) -> list[Ask]:
        return [a for i in snapshot.interrupts for a in asks_of(self.agent, thread_id, i)]

    async def _request(self, thread_id: str, ask: Ask, snapshot: StateSnapshot) -> None:
        context = dict(self.context(snapshot)) if self.context else {}
        context.setdefault("user_request", _first_user_message(snapshot) or ask.reason)
        context.setdefault("agent_reasoning", ask.reason)
        context.setdefault("langgraph_thread_id", thread_id)
        policy = dict(self.edit_policies.get(ask.tool, {}))
        if not ask.editable:
            policy["editable"] = False
        try:
            await self.hitl.request(
                tool=ask.tool,
                arguments=ask.arguments,
                reason=ask.reason,
                correlation_id=ask.correlation_id,
                run_id=thread_id,
                agent=self.agent,
                tool_call_id=ask.tool_call_id,
                risk_level=self.risk_level,
                context=context,
                arguments_schema=ask.arguments_schema,
                edit_policy=policy or None,
                timeout=self.timeout,
            )
        except Conflict:
            # The same interrupt asked before under other settings (e.g. a new timeout):
            # its id is derived from the interrupt, so the stored approval is this one.
            log.warning("approval %s exists with other settings; using it", ask.correlation_id)

    async def outcomes(self, thread_id: str) -> tuple[StateSnapshot, list[Ask], dict[str, Outcome]]:
        """The thread's pause, its approvals and the (verified) outcomes decided so far."""
        snapshot = await self.graph.aget_state(self.config(thread_id))
        asks = self._asks(thread_id, snapshot)
        outcomes: dict[str, Outcome] = {}
        for ask in asks:
            outcome = await self.hitl.outcome(await self.hitl.get(ask.correlation_id))
            if outcome is not None:
                outcomes[ask.correlation_id] = outcome
        return snapshot, asks, outcomes

    async def resume(self, thread_id: str) -> bool:
        """Resume the thread if every approval of its pause is decided; True if this call did.

        The claim is on the pause (the checkpoint the thread doc recorded), so exactly one
        bridge carries the thread from that pause to its next one, whoever crashed on the way.
        """
        doc = await self.threads.find_one({"_id": thread_id})
        if doc is None:
            return False
        pause = str(doc["checkpoint_id"])
        snapshot, asks, outcomes = await self.outcomes(thread_id)
        if _checkpoint_of(snapshot) == pause and len(outcomes) < len(asks):
            # All or nothing: resuming part of a pause re-runs the node (langgraph#6208).
            return False
        try:
            async with self._claim(f"{thread_id}:{pause}") as held:
                if not held:
                    return False
                snapshot, asks, outcomes = await self.outcomes(thread_id)
                config = self.config(thread_id)
                if _checkpoint_of(snapshot) == pause:
                    if len(outcomes) < len(asks):
                        raise _NotYet()
                    await self.graph.ainvoke(Command(resume=resume_map(asks, outcomes)), config)
                elif snapshot.next and not snapshot.interrupts:
                    # Our own (or a dead bridge's) resume died after it left the pause.
                    await self.graph.ainvoke(None, config)
        except _NotYet:
            return False
        await self.sync(thread_id)
        return True

    async def serve(self, stop: asyncio.Event | None = None) -> None:
        """Resume every waiting thread (any bridge's) as its decisions arrive, until `stop`."""
        stop = stop or asyncio.Event()
        watching: dict[str, asyncio.Task[None]] = {}
        try:
            while not stop.is_set():
                async for doc in self.threads.find({}, {"_id": 1}):
                    task = watching.get(doc["_id"])
                    if task is None or task.done():
                        watching[doc["_id"]] = asyncio.create_task(self._watch(doc["_id"]))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.poll_seconds)
        finally:
            for task in watching.values():
                task.cancel()
            await asyncio.gather(*watching.values(), return_exceptions=True)

    async def _watch(self, thread_id: str) -> None:
        try:
            while (doc := await self.threads.find_one({"_id": thread_id})) is not None:
                # Long-polls, no busy loop: each returns once its approval is decided.
                for cid in doc["approvals"]:
                    await (await self.hitl.resume(cid)).wait()
                if not await self.resume(thread_id):
                    await asyncio.sleep(self.poll_seconds)
        except asyncio.CancelledError:
            raise
        except Exception:
            # Logged and retried by serve's next round: the store holds all that is needed.
            log.exception("thread %s: resume failed; retrying", thread_id)
            await asyncio.sleep(5 * self.poll_seconds)  # a failing model or store: back off

    @contextlib.asynccontextmanager
    async def _claim(self, key: str) -> AsyncIterator[bool]:
        """Hold `key` across processes (a unique insert per attempt, a renewed lease)."""
        if key in self._held:
            yield False
            return
        self._held.add(key)
        try:
            claim = await self._take(key)
            if claim is None:
                yield False
                return
            renewing = asyncio.create_task(self._renew(claim))
            try:
                yield True
            finally:
                renewing.cancel()
                await asyncio.gather(renewing, return_exceptions=True)
            await self.claims.update_one({"_id": claim}, {"$set": {"finished": True}})
        finally:
            self._held.discard(key)

    async def _take(self, key: str) -> str | None:
        for attempt in itertools.count():
            claim = f"{key}#{attempt}"
            lease = time.time() + self.lease_seconds
            doc = {"_id": claim, "key": key, "owner": self.owner, "lease_until": lease}
            if await record_once(self.claims, claim, doc):
                return claim
            held = await self.claims.find_one({"_id": claim})
            if held is None or held.get("finished"):
                return None  # done: the re-read of the thread would find it moved on anyway
            if held["owner"] == self.owner:
                # Ours from before a restart or a failed try (this process holds no key
                # twice, see _held): carry on under it, no new attempt needed.
                log.warning("taking over %s, left unfinished by this owner", claim)
                await self.claims.update_one({"_id": claim}, {"$set": {"lease_until": lease}})
                return claim
            if held["lease_until"] > time.time():
                return None  # a live bridge is resuming it
            # An expired lease: the next attempt, which only one taker can insert.
            log.warning("taking over %s from %s (lease expired)", claim, held["owner"])
        raise AssertionError("unreachable")  # pragma: no cover

    async def _renew(self, claim: str) -> None:
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            lease = time.time() + self.lease_seconds
            await self.claims.update_one({"_id": claim}, {"$set": {"lease_until": lease}})


def _checkpoint_of(snapshot: StateSnapshot) -> str:
    return str(snapshot.config.get("configurable", {}).get("checkpoint_id", ""))
