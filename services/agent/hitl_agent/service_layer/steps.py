"""One step of a run at a time: call the model, or handle the actions of its reply.

Each step mutates the loaded run and records what to tell the world in `Changes`;
the runner then commits both as the next checkpoint (`unit_of_work`). Nothing here decides
whether the step "counts": a step whose checkpoint loses the race is discarded,
and only its tool executions (keyed by call id) may have happened, once.
"""

import json
import logging
import uuid
from datetime import timedelta
from typing import Any

from hitl_contracts import RiskLevel, RunEventType
from hitl_contracts.base import utcnow
from pydantic import ValidationError

from hitl_agent.adapters.chat import ChatModel, Reply
from hitl_agent.domain import guards
from hitl_agent.domain.changes import Changes
from hitl_agent.domain.plan import InvalidPlan, parse_plan, plan_schema
from hitl_agent.domain.policy import PolicyArgs
from hitl_agent.domain.run import (
    Action,
    PendingCall,
    PendingKind,
    Run,
    RunStatus,
    Style,
    Turn,
)
from hitl_agent.service_layer import shadow
from hitl_agent.service_layer.agents import AgentSpec
from hitl_agent.service_layer.executions import Executions
from hitl_agent.service_layer.requests import summary
from hitl_agent.tools import intervention
from hitl_agent.tools.registry import ExecutionKey, Tool, ToolError, describe_validation

log = logging.getLogger(__name__)


class Steps:
    def __init__(
        self,
        *,
        model: ChatModel,
        executions: Executions,
        approval_timeout: timedelta,
    ) -> None:
        self.model = model
        self.executions = executions
        self.approval_timeout = approval_timeout

    async def advance(self, run: Run, spec: AgentSpec, changes: Changes) -> None:
        """Move a running run one step forward."""
        if run.turn is None:
            if (why := guards.tripped(run)) is not None:
                self.hold_for_guard(run, why, changes)
            else:
                await self.call_model(run, spec, changes)
            return
        if actions := run.turn.unhandled():
            await self.handle(run, spec, actions, changes)
        elif run.open_calls():
            run.status = RunStatus.AWAITING_APPROVAL
        else:
            run.close_turn()

    # The model

    async def call_model(self, run: Run, spec: AgentSpec, changes: Changes) -> None:
        run.steps += 1
        if spec.policy.style is Style.TOOLS:
            reply = await self.model.complete(run.messages, spec.registry.schemas())
            self._count(run, reply)
            actions = [
                Action(
                    call_id=str(call["id"]),
                    tool=str(call["function"]["name"]),
                    arguments=str(call["function"].get("arguments") or "{}"),
                )
                for call in reply.tool_calls
            ]
            final = reasoning = reply.content
        else:
            reply = await self.model.plan(run.messages, plan_schema(spec.registry.args_schemas()))
            self._count(run, reply)
            try:
                plan = parse_plan(reply.content)
            except InvalidPlan as exc:
                self._invalid_plan(run, str(exc), changes)
                return
            actions = [
                Action(
                    call_id=f"act_{run.steps}_{number}",
                    tool=action.tool,
                    arguments=json.dumps(action.arguments),
                    confidence=plan.confidence_of(action),
                )
                for number, action in enumerate(plan.actions)
            ]
            final, reasoning = plan.final_answer or plan.reasoning, plan.reasoning
        changes.emit(
            RunEventType.MODEL_REPLIED,
            step=run.steps,
            actions=[
                {"tool": a.tool, "call_id": a.call_id, "arguments": a.arguments} for a in actions
            ],
            total_tokens=run.usage.total_tokens,
        )
        if not actions:
            run.status = RunStatus.COMPLETED
            run.output = final
            changes.emit(RunEventType.COMPLETED, output=final)
            return
        run.turn = Turn(style=spec.policy.style, actions=actions, reasoning=reasoning)

    def _count(self, run: Run, reply: Reply) -> None:
        run.usage.prompt_tokens += reply.prompt_tokens
        run.usage.completion_tokens += reply.completion_tokens
        run.messages.append(reply.message)

    def _invalid_plan(self, run: Run, error: str, changes: Changes) -> None:
        guards.record_outcome(run, "action_plan", "invalid", ok=False, error=error)
        run.messages.append(
            {
                "role": "user",
                "content": f"Your reply was not a valid action plan ({error}). "
                "Answer with JSON matching the action plan schema.",
            }
        )
        changes.emit(RunEventType.MODEL_REPLIED, step=run.steps, actions=[], error=error)

    # The model's actions

    async def handle(
        self, run: Run, spec: AgentSpec, actions: list[Action], changes: Changes
    ) -> None:
        for action in actions:
            await self._handle_one(run, spec, action, changes)
        if open_calls := run.open_calls():
            run.status = RunStatus.AWAITING_APPROVAL
            changes.emit(
                RunEventType.AWAITING_APPROVAL,
                approvals=[summary(p) for p in open_calls],
            )
        else:
            run.close_turn()

    async def _handle_one(
        self, run: Run, spec: AgentSpec, action: Action, changes: Changes
    ) -> None:
        turn = run.turn
        assert turn is not None
        tool = spec.registry.get(action.tool)
        if tool is None:
            error = f"Error: there is no tool named {action.tool!r}."
            turn.add_result(action.call_id, error)
            guards.record_outcome(run, action.tool, action.arguments, ok=False, error=error)
            return
        try:
            args = tool.parse(_json_object(action.arguments))
        except ValueError as exc:
            why = describe_validation(exc) if isinstance(exc, ValidationError) else str(exc)
            error = f"Error: invalid arguments for {tool.name}: {why}"
            turn.add_result(action.call_id, error)
            guards.record_outcome(run, tool.name, action.arguments, ok=False, error=error)
            return
        reasons = spec.reasons(tool, args, confidence=action.confidence)
        if tool.check is not None and (reason := await tool.check(args)) is not None:
            reasons.append(reason)
        if tool.totals is not None:
            reasons += await tool.totals(args, run.moved_unreviewed)
        shadow.observe(
            spec, tool.name, action.call_id, args, live_asks=bool(reasons), changes=changes
        )
        if not reasons:
            if (moved := args.movement()) is not None:
                # Counted before it runs: a failed attempt still counts (conservative).
                run.moved_unreviewed += moved.amount
            result = await self.execute(run, tool, action.call_id, args, None, changes)
            turn.add_result(action.call_id, result)
            return
        try:
            context = await tool.preview(args) if tool.preview else {}
        except ToolError as exc:
            turn.add_result(action.call_id, f"Error: {exc}")
            guards.record_outcome(run, tool.name, action.arguments, ok=False, error=str(exc))
            return
        if action.confidence is not None:
            context["confidence"] = action.confidence
        if tool.answered_by_human:
            question = args.public_arguments()
            reason = f"the agent asks for help: {question.get('reason', '')}"
        else:
            reason = "; ".join(reasons)
        now = utcnow()
        self._hold(
            run,
            changes,
            PendingCall(
                correlation_id=str(uuid.uuid4()),
                tool_call_id=action.call_id,
                tool=tool.name,
                arguments=args.public_arguments(),
                reason=reason,
                risk_level=tool.policy.risk_level,
                requested_at=now,
                expires_at=now + self._timeout(tool),
                context=context,
                reasoning=turn.reasoning,
            ),
        )
        turn.held.append(action.call_id)

    async def execute(
        self,
        run: Run,
        tool: Tool,
        call_id: str,
        args: PolicyArgs,
        preview: dict[str, Any] | None,
        changes: Changes,
    ) -> str:
        outcome = await self.executions.run(
            tool, ExecutionKey(run.run_id, call_id), args, preview=preview
        )
        guards.record_outcome(
            run, tool.name, args.public_arguments(), ok=outcome.ok, error=outcome.result
        )
        changes.emit(
            RunEventType.TOOL_EXECUTED,
            tool=tool.name,
            tool_call_id=call_id,
            ok=outcome.ok,
            result=outcome.result,
        )
        return outcome.result

    def _timeout(self, tool: Tool) -> timedelta:
        seconds = tool.policy.timeout_seconds
        return timedelta(seconds=seconds) if seconds else self.approval_timeout

    def _hold(self, run: Run, changes: Changes, pending: PendingCall) -> None:
        run.pending.append(pending)
        changes.held.append(pending)

    # The loop and budget guard

    def hold_for_guard(self, run: Run, why: str, changes: Changes) -> None:
        now = utcnow()
        pending = PendingCall(
            correlation_id=str(uuid.uuid4()),
            tool_call_id=f"guard_{uuid.uuid4().hex[:12]}",
            tool=intervention.NAME,
            arguments={
                "reason": f"The run was stopped by its loop guard: {why}. Let it go on?",
                "context": f"{run.steps} model steps, {run.usage.total_tokens} tokens so far",
                "action_type": "continue_run",
            },
            reason=f"loop guard: {why}",
            risk_level=RiskLevel.MEDIUM,
            requested_at=now,
            expires_at=now + self.approval_timeout,
            kind=PendingKind.GUARD,
            context={"guard": why, "steps": run.steps, "total_tokens": run.usage.total_tokens},
            reasoning=_last_reasoning(run),
        )
        self._hold(run, changes, pending)
        run.status = RunStatus.AWAITING_APPROVAL
        changes.emit(RunEventType.AWAITING_APPROVAL, approvals=[summary(pending)], guard=why)


def _json_object(text: str) -> dict[str, Any]:
    value = json.loads(text or "{}")
    if not isinstance(value, dict):
        raise ValueError("arguments must be a JSON object")
    return value


def _last_reasoning(run: Run) -> str:
    return next(
        (
            str(m.get("content"))
            for m in reversed(run.messages)
            if m["role"] == "assistant" and m.get("content")
        ),
        "",
    )
