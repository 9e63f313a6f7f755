"""Tools and their declared approval policies, enforced in code before anything executes."""

import copy
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Any

from hitl_sdk import ToolError
from pydantic import ValidationError

from hitl_agent.domain.policy import PolicyArgs, ToolOverride, ToolPolicy

__all__ = [
    "Execution",
    "ExecutionKey",
    "PolicyArgs",
    "Registry",
    "Tool",
    "ToolError",
    "TotalsCheck",
    "describe_validation",
]


@dataclass(frozen=True)
class ExecutionKey:
    """Unique per tool call; effects are recorded under it so they apply once."""

    run_id: str
    tool_call_id: str

    def __str__(self) -> str:
        return f"{self.run_id}:{self.tool_call_id}"


@dataclass(frozen=True)
class Execution:
    key: ExecutionKey
    # What the reviewer saw and approved (e.g. the exact files); None for unreviewed
    # or edited calls, which work it out afresh.
    preview: dict[str, Any] | None = None


Executor = Callable[[Any, Execution], Awaitable[str]]
Previewer = Callable[[Any], Awaitable[dict[str, Any]]]
Check = Callable[[Any], Awaitable[str | None]]
# (arguments, what the run already moved without approval) -> reasons to ask a human.
TotalsCheck = Callable[[Any, float], Awaitable[list[str]]]


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    args: type[PolicyArgs]
    execute: Executor
    policy: ToolPolicy = field(default_factory=ToolPolicy)
    # Safe to run again for the same call after a crash: its effects are keyed by
    # the call. Otherwise an interrupted call is reported, never repeated.
    idempotent: bool = False
    # Extra context for the reviewer, computed when the call is held.
    preview: Previewer | None = None
    # The reviewer's answer is the result (request_human_intervention): nothing runs.
    answered_by_human: bool = False
    # An async predicate (a lookup the arguments alone cannot answer): a reason to ask.
    check: Check | None = None
    # Totals this call adds to (money per run and per account per day): a human must
    # approve once they would pass their limits, so splitting does not avoid approval.
    totals: TotalsCheck | None = None

    def parse(self, arguments: dict[str, Any]) -> PolicyArgs:
        return self.args.model_validate(arguments)

    def openai_schema(self) -> dict[str, Any]:
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.description,
                "parameters": self.args_schema(),
            },
        }

    def args_schema(self) -> dict[str, Any]:
        # A copy, so no caller can change the next one's.
        return copy.deepcopy(_json_schema(self.args))


@functools.cache
def _json_schema(args: type[PolicyArgs]) -> dict[str, Any]:
    """Built once per argument model: pydantic's schema generation was the agent's
    largest Python cost per model call and per held call (py-spy)."""
    return args.model_json_schema()


class Registry:
    def __init__(self, tools: list[Tool]) -> None:
        self.tools = {tool.name: tool for tool in tools}

    def get(self, name: str) -> Tool | None:
        return self.tools.get(name)

    def schemas(self) -> list[dict[str, Any]]:
        return [tool.openai_schema() for tool in self.tools.values()]

    def args_schemas(self) -> dict[str, dict[str, Any]]:
        return {name: tool.args_schema() for name, tool in self.tools.items()}

    def tightened(self, overrides: dict[str, ToolOverride]) -> "Registry":
        unknown = sorted(set(overrides) - set(self.tools))
        if unknown:
            raise ValueError(f"policy for unknown tools {unknown}; known: {sorted(self.tools)}")
        return Registry(
            [
                replace(tool, policy=tool.policy.tightened(overrides.get(name)))
                for name, tool in self.tools.items()
            ]
        )

    def plus(self, *tools: Tool) -> "Registry":
        return Registry([*self.tools.values(), *tools])


def describe_validation(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in exc.errors()
    )
