"""A runner on the in-memory fakes (`tests/fakes.py`), a scripted model and a tool world,
for unit tests of the agent runtime's logic."""

import asyncio
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from hitl_agent.adapters.chat import Reply
from hitl_agent.domain.policy import AgentPolicy, PolicyArgs, ToolPolicy
from hitl_agent.domain.run import Run
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

from tests.fakes import FakeApprovals, MemoryStore

# Stands in for the approval service's signing key.
SIGNER = DecisionSigner.generate()


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

    async def publish_request(batch: list[ApprovalRequested]) -> None:
        requests.extend(batch)

    async def publish_event(batch: list[RunEvent]) -> None:
        published.extend(batch)

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
