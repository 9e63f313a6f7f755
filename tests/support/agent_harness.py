"""In-memory fakes of the agent runtime's ports, for unit tests of its logic.

The store keeps the one property that matters: appending a checkpoint whose seq
exists fails, exactly like the unique-key insert in MongoDB / FerretDB.
"""

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hitl_agent.adapters.approvals import ApprovalClient
from hitl_agent.adapters.chat import Reply
from hitl_agent.adapters.runs import Checkpoint, EventPage, RunStore, checkpoint_id
from hitl_agent.domain.policy import AgentPolicy, PolicyArgs, ToolPolicy
from hitl_agent.domain.run import Run, RunStatus
from hitl_agent.service_layer.agents import AgentSpec, Builtin, build_catalog
from hitl_agent.service_layer.executions import Executions
from hitl_agent.service_layer.outbox import Outbox
from hitl_agent.service_layer.runner import Runner
from hitl_agent.service_layer.steps import Steps
from hitl_agent.tools.registry import Execution, Registry, Tool, ToolError
from hitl_contracts import (
    ApprovalDecided,
    ApprovalRequested,
    Channel,
    Decision,
    RiskLevel,
    RunEvent,
    TaskSubmitted,
)
from hitl_contracts.approval import EditPolicy
from hitl_contracts.signing import DecisionSigner, DecisionVerifier
from hitl_shared.decision_keys import DecisionKeys
from pydantic import Field, PrivateAttr, model_validator

# Stands in for the approval service's signing key.
SIGNER = DecisionSigner.generate()


class MemoryStore(RunStore):
    def __init__(self) -> None:
        self.docs: dict[str, dict[str, Any]] = {}
        self.markers: dict[str, dict[str, Any]] = {}
        self.in_progress: dict[str, datetime] = {}
        self.execs: dict[str, dict[str, Any]] = {}

    async def ensure_indexes(self) -> None:
        return None

    async def append(self, checkpoint: Checkpoint) -> bool:
        await asyncio.sleep(0)  # let racing workers interleave, as real I/O would
        if checkpoint.has_outbox:
            self.markers.setdefault(checkpoint.id, {"_id": checkpoint.id, "at": checkpoint.at})
        if checkpoint.id in self.docs:
            return False
        self.docs[checkpoint.id] = checkpoint.to_document()
        return True

    async def project(self, run: Run) -> None:
        return None

    def _docs(self, run_id: str) -> list[dict[str, Any]]:
        return sorted(
            (d for d in self.docs.values() if d["run_id"] == run_id), key=lambda d: d["seq"]
        )

    async def latest(self, run_id: str, known: Run | None = None) -> Run | None:
        await asyncio.sleep(0)
        docs = self._docs(run_id)
        return Run.model_validate(docs[-1]["state"]) if docs else None

    async def event_page(self, run_id: str, seq: int) -> EventPage | None:
        doc = self.docs.get(checkpoint_id(run_id, seq))
        if doc is None:
            return None
        return EventPage(
            [RunEvent.model_validate(e) for e in doc["events"]],
            RunStatus(doc["state"]["status"]),
        )

    async def checkpoint(self, checkpoint_id_: str) -> Checkpoint | None:
        doc = self.docs.get(checkpoint_id_)
        return None if doc is None else Checkpoint.from_document(doc)

    async def undelivered(self, before: datetime, limit: int = 100) -> list[dict[str, Any]]:
        return [m for m in self.markers.values() if m["at"] < before]

    async def mark_sent(self, checkpoint: Checkpoint) -> None:
        self.markers[checkpoint.id]["sent"] = True

    async def delivered(self, checkpoint_id_: str) -> None:
        self.markers.pop(checkpoint_id_, None)

    async def delivered_many(self, checkpoint_ids: list[str]) -> None:
        for checkpoint_id_ in checkpoint_ids:
            self.markers.pop(checkpoint_id_, None)

    async def set_active(self, run_id: str, since: datetime | None) -> None:
        if since is None:
            self.in_progress.pop(run_id, None)
        else:
            self.in_progress[run_id] = since

    async def active_since(self, before: datetime, limit: int = 100) -> list[str]:
        return [r for r, since in self.in_progress.items() if since < before]

    async def claim_execution(self, key: str, *, tool: str, owner: str) -> bool:
        if key in self.execs:
            return False
        self.execs[key] = {
            "_id": key,
            "tool": tool,
            "owner": owner,
            "state": "running",
            "at": datetime.now(UTC),
        }
        return True

    async def record_execution(
        self, key: str, *, tool: str, owner: str, result: str, ok: bool
    ) -> None:
        self.execs.setdefault(
            key,
            {"_id": key, "tool": tool, "owner": owner, "state": "done", "result": result, "ok": ok},
        )

    async def finish_execution(self, key: str, *, result: str, ok: bool) -> None:
        self.execs[key].update(state="done", result=result, ok=ok)

    async def execution(self, key: str) -> dict[str, Any] | None:
        return self.execs.get(key)

    def events(self, run_id: str) -> list[RunEvent]:
        return [RunEvent.model_validate(e) for d in self._docs(run_id) for e in d["events"]]


def call(name: str, **arguments: Any) -> dict[str, Any]:
    return {
        "id": f"call_{uuid.uuid4().hex[:10]}",
        "type": "function",
        "function": {"name": name, "arguments": json.dumps(arguments)},
    }


def tool_calls(*calls: dict[str, Any]) -> Reply:
    return Reply({"role": "assistant", "content": None, "tool_calls": list(calls)}, 10, 5)


def say(text: str) -> Reply:
    return Reply({"role": "assistant", "content": text}, 10, 5)


def plan(*actions: dict[str, Any], confidence: float = 0.95, final: str | None = None) -> Reply:
    body = {
        "reasoning": "because",
        "confidence": confidence,
        "actions": list(actions),
        "final_answer": final,
    }
    return Reply({"role": "assistant", "content": json.dumps(body)}, 10, 5)


@dataclass
class ScriptedModel:
    """Answers the N-th call of a run with the N-th reply (by assistant messages so far)."""

    replies: list[Reply]
    name: str = "scripted"
    calls: list[list[dict[str, Any]]] = field(default_factory=list)
    tokens: tuple[int, int] | None = None

    def _next(self, messages: list[dict[str, Any]]) -> Reply:
        self.calls.append([dict(m) for m in messages])
        index = sum(1 for m in messages if m["role"] == "assistant")
        reply = self.replies[index]
        if self.tokens is not None:
            reply = Reply(reply.message, *self.tokens)
        return reply

    async def complete(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> Reply:
        await asyncio.sleep(0)
        return self._next(messages)

    async def plan(self, messages: list[dict[str, Any]], schema: dict[str, Any]) -> Reply:
        await asyncio.sleep(0)
        return self._next(messages)


class NoteArgs(PolicyArgs):
    text: str


class PayArgs(PolicyArgs):
    amount: float = Field(gt=0)
    _large: bool = PrivateAttr(default=False)

    @model_validator(mode="after")
    def _policy(self) -> "PayArgs":
        self._large = self.amount > 100
        return self

    def approval_reason(self) -> str | None:
        return f"payment of {self.amount:g} is over 100" if self._large else None


class SendArgs(PolicyArgs):
    to: str
    amount: float = Field(gt=0)
    source: str = "checking"

    @model_validator(mode="after")
    def _normalise(self) -> "SendArgs":
        self.to = self.to.strip().lower()
        return self


class FireArgs(PolicyArgs):
    target: str


class Crash(Exception):
    """Stands in for the process dying."""


@dataclass
class World:
    """The tools' observable effects."""

    notes: list[str] = field(default_factory=list)
    payments: dict[str, float] = field(default_factory=dict)
    fired: list[str] = field(default_factory=list)
    sent: list[tuple[str, str, float]] = field(default_factory=list)
    crash_after: set[str] = field(default_factory=set)

    def registry(self) -> Registry:
        async def note(args: NoteArgs, run: Execution) -> str:
            self.notes.append(args.text)
            return f"noted {args.text}"

        async def pay(args: PayArgs, run: Execution) -> str:
            # Keyed by the call, like the ledger: a repeat changes nothing.
            self.payments.setdefault(str(run.key), args.amount)
            return f"paid {args.amount:g}"

        async def send(args: SendArgs, run: Execution) -> str:
            self.sent.append((args.source, args.to, args.amount))
            return f"sent {args.amount:g} to {args.to}"

        async def broken(args: NoteArgs, run: Execution) -> str:
            raise ToolError(f"cannot handle {args.text}")

        async def fire(args: FireArgs, run: Execution) -> str:
            self.fired.append(args.target)
            return f"fired at {args.target}"

        return Registry(
            [
                Tool("note", "Take a note.", NoteArgs, note, idempotent=True),
                Tool(
                    "pay",
                    "Pay.",
                    PayArgs,
                    pay,
                    policy=ToolPolicy(
                        risk_level=RiskLevel.HIGH, edit=EditPolicy(not_above=("amount",))
                    ),
                    idempotent=True,
                ),
                Tool(
                    "send",
                    "Send money; always asks.",
                    SendArgs,
                    send,
                    policy=ToolPolicy(
                        requires_approval=True,
                        edit=EditPolicy(locked=("to", "source"), not_above=("amount",)),
                    ),
                ),
                Tool("broken", "Always fails.", NoteArgs, broken, idempotent=True),
                Tool(
                    "fire",
                    "Not idempotent.",
                    FireArgs,
                    fire,
                    policy=ToolPolicy(requires_approval=True),
                ),
            ]
        )

    def after_execute(self, tool: str) -> None:
        if tool in self.crash_after:
            self.crash_after.discard(tool)
            raise Crash(tool)


class FakeApprovals(ApprovalClient):
    def __init__(self) -> None:
        self.cancelled: list[tuple[str, str]] = []

    async def cancel(self, correlation_id: str, comment: str) -> str:
        self.cancelled.append((correlation_id, comment))
        return "cancelled"


@dataclass
class Harness:
    runner: Runner
    store: MemoryStore
    model: ScriptedModel
    world: World
    requests: list[ApprovalRequested]
    published: list[RunEvent]
    approvals: FakeApprovals

    async def start(self, text: str = "do it", agent: str = "test", **metadata: Any) -> str:
        task = TaskSubmitted(task_id=str(uuid.uuid4()), input=text, agent=agent, metadata=metadata)
        await self.runner.start(task)
        return task.task_id

    async def run(self, run_id: str) -> Run:
        run = await self.store.latest(run_id)
        assert run is not None
        return run

    def types(self, run_id: str) -> list[str]:
        return [e.type.value for e in self.store.events(run_id)]


def decided(
    request: ApprovalRequested | Any,
    decision: Decision,
    *,
    arguments: dict[str, Any] | None = None,
    comment: str = "",
) -> ApprovalDecided:
    """A decision as the approval service makes it: about the request's call, signed."""
    return SIGNER.sign(
        ApprovalDecided(
            correlation_id=request.correlation_id,
            run_id=request.run_id,
            agent=getattr(request, "agent", ""),
            tool=getattr(request, "tool", ""),
            tool_call_id=getattr(request, "tool_call_id", ""),
            decision=decision,
            arguments=arguments,
            reviewer="rita",
            channel=Channel.API,
            comment=comment,
            decided_at=datetime.now(UTC),
        )
    )


def harness(
    replies: list[Reply],
    *,
    policy: AgentPolicy | None = None,
    tokens: tuple[int, int] | None = None,
    wait_seconds: float = 0.0,
    config: dict[str, Any] | None = None,
) -> Harness:
    store, world = MemoryStore(), World()
    model = ScriptedModel(replies, tokens=tokens)
    requests: list[ApprovalRequested] = []
    published: list[RunEvent] = []
    approvals = FakeApprovals()

    async def publish_request(request: ApprovalRequested) -> None:
        requests.append(request)

    async def publish_event(event: RunEvent) -> None:
        published.append(event)

    agents: dict[str, AgentSpec] = build_catalog(
        [Builtin("test", "You test.", world.registry, policy or AgentPolicy())], config or {}
    )
    runner = Runner(
        store=store,
        agents=agents,
        steps=Steps(
            model=model,
            executions=Executions(
                store, owner="unit", wait_seconds=wait_seconds, after_execute=world.after_execute
            ),
            approval_timeout=timedelta(minutes=30),
        ),
        outbox=Outbox(
            store, publish_request=publish_request, publish_event=publish_event, approvals=approvals
        ),
        keys=DecisionKeys(pinned=DecisionVerifier([SIGNER.key.public_key()])),
    )
    return Harness(runner, store, model, world, requests, published, approvals)
