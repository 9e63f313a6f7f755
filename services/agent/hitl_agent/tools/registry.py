"""Tools and their approval policies, enforced in code before anything executes."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from hitl_shared.contracts import RiskLevel
from pydantic import BaseModel, ValidationError


class ToolError(Exception):
    """A tool refused its input; the message goes back to the model."""


class PolicyArgs(BaseModel):
    """Arguments whose validators decide whether a human must approve."""

    def approval_reason(self) -> str | None:
        """Why this call needs approval, or None to run it straight away."""
        return None


@dataclass(frozen=True)
class ExecutionKey:
    """Unique per tool call; effects are recorded under it so they apply once."""

    run_id: str
    tool_call_id: str

    def __str__(self) -> str:
        return f"{self.run_id}:{self.tool_call_id}"


Executor = Callable[[Any, ExecutionKey], Awaitable[str]]


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    args: type[PolicyArgs]
    execute: Executor
    risk_level: RiskLevel = RiskLevel.MEDIUM
    requires_approval: bool = False
    timeout_seconds: float | None = None

    def parse(self, arguments: dict[str, Any]) -> PolicyArgs:
        return self.args.model_validate(arguments)

    def approval_reason(self, args: PolicyArgs) -> str | None:
        if self.requires_approval:
            return f"{self.name} always requires approval"
        return args.approval_reason()

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
        return self.args.model_json_schema()


class Registry:
    def __init__(self, tools: list[Tool]) -> None:
        self.tools = {tool.name: tool for tool in tools}

    def get(self, name: str) -> Tool | None:
        return self.tools.get(name)

    def schemas(self) -> list[dict[str, Any]]:
        return [tool.openai_schema() for tool in self.tools.values()]


def describe_validation(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(map(str, e['loc'])) or 'arguments'}: {e['msg']}" for e in exc.errors()
    )
