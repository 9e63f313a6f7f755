"""The agent loop: call the model, run safe tools, pause risky ones, resume from the store.

Nothing waits in memory. A paused run is a document; a decision arriving at any
replica, after any restart, loads it and carries on. Effects are keyed by tool
call, resumption by (run, approval), so duplicates change nothing.
"""

import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from hitl_shared.contracts import (
    ApprovalDecided,
    ApprovalRequested,
    Decision,
    RequestContext,
    RunEventType,
    TaskSubmitted,
)
from pydantic import ValidationError

from hitl_agent.adapters.llm import ChatModel
from hitl_agent.adapters.runs import RunRepository
from hitl_agent.domain.run import PendingCall, Run, RunStatus, utcnow
from hitl_agent.tools.registry import ExecutionKey, Registry, Tool, ToolError, describe_validation

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AgentSpec:
    name: str
    system_prompt: str
    registry: Registry


RequestPublisher = Callable[[ApprovalRequested], Awaitable[None]]
RunEventPublisher = Callable[[Run, RunEventType, dict[str, Any]], Awaitable[None]]


class UnknownAgent(ValueError):
    pass


class Runner:
    def __init__(
        self,
        *,
        runs: RunRepository,
        agents: dict[str, AgentSpec],
        model: ChatModel,
        publish_request: RequestPublisher,
        publish_event: RunEventPublisher,
        max_steps: int = 12,
        approval_timeout: timedelta = timedelta(minutes=30),
    ) -> None:
        self.runs = runs
        self.agents = agents
        self.model = model
        self.publish_request = publish_request
        self.publish_event = publish_event
        self.max_steps = max_steps
        self.approval_timeout = approval_timeout

    def spec(self, agent: str) -> AgentSpec:
        if agent not in self.agents:
            raise UnknownAgent(f"unknown agent {agent!r}; known: {sorted(self.agents)}")
        return self.agents[agent]

    async def submit(self, task: TaskSubmitted) -> Run:
        """Record a queued run (idempotent by task id) so it is visible at once."""
        spec = self.spec(task.agent)
        run = Run(
            run_id=task.task_id,
            task_id=task.task_id,
            agent=task.agent,
            input=task.input,
            metadata=task.metadata,
            messages=[
                {"role": "system", "content": spec.system_prompt},
                {"role": "user", "content": task.input},
            ],
        )
        if not await self.runs.create(run):
            existing = await self.runs.get(task.task_id)
            assert existing is not None
            return existing
        return run

    async def start(self, task: TaskSubmitted) -> None:
        run = await self.submit(task)
        if run.status is not RunStatus.QUEUED:
            log.info("task already started (redelivery)", extra={"run_id": run.run_id})
            return
        if not await self.runs.claim(f"{run.run_id}:start"):
            return
        run.status = RunStatus.RUNNING
        await self.publish_event(
            run, RunEventType.STARTED, {"input": run.input, "model": self.model.name}
        )
        await self.advance(run)

    async def advance(self, run: Run) -> None:
        """Run the loop until the run completes, fails or pauses for approval."""
        spec = self.spec(run.agent)
        while run.steps < self.max_steps:
            run.steps += 1
            turn = await self.model.complete(run.messages, spec.registry.schemas())
            run.usage.prompt_tokens += turn.prompt_tokens
            run.usage.completion_tokens += turn.completion_tokens
            run.messages.append(turn.message)
            if not turn.tool_calls:
                run.status = RunStatus.COMPLETED
                run.output = str(turn.message.get("content") or "")
                await self.runs.save(run)
                await self.publish_event(run, RunEventType.COMPLETED, {"output": run.output})
                return
            for call in turn.tool_calls:
                await self._handle_call(run, spec, call)
            if run.open_calls():
                await self._pause(run)
                return
        run.status = RunStatus.FAILED
        run.error = f"step limit of {self.max_steps} reached"
        await self.runs.save(run)
        await self.publish_event(run, RunEventType.FAILED, {"error": run.error})

    async def resume(self, decided: ApprovalDecided) -> None:
        """Apply one decision; continue the run once every call of its turn is decided."""
        ids = {"run_id": decided.run_id, "correlation_id": decided.correlation_id}
        run = await self.runs.get(decided.run_id)
        if run is None:
            log.warning("decision for an unknown run; ignored", extra=ids)
            return
        pending = run.find_pending(decided.correlation_id)
        if pending is None or pending.resolved or run.status.terminal:
            log.info("decision already applied or not ours; ignored", extra=ids)
            return
        if not await self.runs.claim(
            f"{run.run_id}:{decided.correlation_id}", decision=decided.decision.value
        ):
            log.info("another delivery already resumes this decision", extra=ids)
            return
        spec = self.spec(run.agent)
        tool = spec.registry.get(pending.tool)
        assert tool is not None, f"pending call of unregistered tool {pending.tool}"
        pending.decision = decided.decision.value
        pending.comment = decided.comment
        pending.resolved = True
        content = await self._apply_decision(run, tool, pending, decided)
        run.add_tool_result(pending.tool_call_id, content)
        if run.open_calls():
            await self.runs.save(run)
            return
        run.status = RunStatus.RUNNING
        await self.runs.save(run)
        await self.publish_event(
            run,
            RunEventType.RESUMED,
            {
                "correlation_id": decided.correlation_id,
                "decision": decided.decision.value,
            },
        )
        await self.advance(run)

    async def republish_requests(self) -> int:
        """Outbox relay: publish approval requests a crash left unsent."""
        count = 0
        for run in await self.runs.with_unpublished_requests():
            await self._publish_requests(run)
            count += 1
        return count

    async def _apply_decision(
        self, run: Run, tool: Tool, pending: PendingCall, decided: ApprovalDecided
    ) -> str:
        who = f"{decided.reviewer} via {decided.channel.value}"
        if decided.decision.allows_execution:
            arguments = decided.arguments or pending.arguments
            try:
                args = tool.parse(arguments)
            except ValidationError as exc:
                return (
                    f"The human operator's edited arguments were invalid "
                    f"({describe_validation(exc)}), so nothing was executed."
                )
            result = await self._execute(run, tool, pending.tool_call_id, args)
            if decided.decision is Decision.MODIFIED:
                return f"A human operator ({who}) changed the arguments to {json.dumps(arguments)}. {result}"
            return result
        if decided.decision is Decision.EXPIRED:
            return (
                "The approval request timed out without a human decision, so this action "
                "was not executed. Treat it as rejected."
            )
        if decided.decision is Decision.CANCELLED:
            return "The run was cancelled; this action was not executed."
        comment = decided.comment or "no reason given"
        return f"The human operator rejected this: {comment}"

    async def _handle_call(self, run: Run, spec: AgentSpec, call: dict[str, Any]) -> None:
        call_id, fn = call["id"], call["function"]
        tool = spec.registry.get(fn["name"])
        if tool is None:
            run.add_tool_result(call_id, f"Error: there is no tool named {fn['name']!r}.")
            return
        try:
            raw = json.loads(fn.get("arguments") or "{}")
            args = tool.parse(raw)
        except (ValueError, ValidationError) as exc:
            why = describe_validation(exc) if isinstance(exc, ValidationError) else str(exc)
            run.add_tool_result(call_id, f"Error: invalid arguments for {tool.name}: {why}")
            return
        reason = tool.approval_reason(args)
        if reason is None:
            run.add_tool_result(call_id, await self._execute(run, tool, call_id, args))
            return
        now = utcnow()
        timeout = (
            timedelta(seconds=tool.timeout_seconds)
            if tool.timeout_seconds
            else self.approval_timeout
        )
        run.pending.append(
            PendingCall(
                correlation_id=str(uuid.uuid4()),
                tool_call_id=call_id,
                tool=tool.name,
                arguments=args.model_dump(mode="json", exclude={"requires_confirmation"}),
                reason=reason,
                risk_level=tool.risk_level,
                requested_at=now,
                expires_at=now + timeout,
            )
        )

    async def _execute(self, run: Run, tool: Tool, call_id: str, args: Any) -> str:
        key = ExecutionKey(run.run_id, call_id)
        done = await self.runs.execution(str(key))
        if done is not None:
            return str(done["result"])
        try:
            result, ok = await tool.execute(args, key), True
        except ToolError as exc:
            result, ok = f"Error: {exc}", False
        await self.runs.record_execution(str(key), tool=tool.name, result=result, ok=ok)
        await self.publish_event(
            run,
            RunEventType.TOOL_EXECUTED,
            {
                "tool": tool.name,
                "tool_call_id": call_id,
                "ok": ok,
                "result": result,
            },
        )
        return result

    async def _pause(self, run: Run) -> None:
        run.status = RunStatus.AWAITING_APPROVAL
        # Persist first: the request is only published once the run can be resumed.
        await self.runs.save(run)
        await self._publish_requests(run)
        await self.publish_event(
            run,
            RunEventType.AWAITING_APPROVAL,
            {
                "approvals": [p.correlation_id for p in run.open_calls()],
            },
        )

    async def _publish_requests(self, run: Run) -> None:
        reasoning = next(
            (
                str(m.get("content"))
                for m in reversed(run.messages)
                if m["role"] == "assistant" and m.get("content")
            ),
            "",
        )
        changed = False
        for pending in run.open_calls():
            if pending.published:
                continue
            tool = self.spec(run.agent).registry.get(pending.tool)
            await self.publish_request(
                ApprovalRequested(
                    correlation_id=pending.correlation_id,
                    run_id=run.run_id,
                    agent=run.agent,
                    tool=pending.tool,
                    tool_call_id=pending.tool_call_id,
                    arguments=pending.arguments,
                    reason=pending.reason,
                    risk_level=pending.risk_level,
                    context=RequestContext(user_request=run.input, agent_reasoning=reasoning),
                    requested_at=pending.requested_at,
                    expires_at=pending.expires_at,
                    arguments_schema=tool.args_schema() if tool else None,
                    requested_by=str(run.metadata.get("submitted_by", "")),
                )
            )
            pending.published = True
            changed = True
        if changed:
            await self.runs.save(run)
