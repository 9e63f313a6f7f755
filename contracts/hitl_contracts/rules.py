"""Approval rules as data: the operators' conditions, and candidate policies for what-ifs.

The agent enforces these (`hitl_agent.domain.policy`); the approval service replays a
candidate over its stored history (the what-if) and the agent can run one beside the
live policy without acting on it (shadow mode). One model, so both read a rule alike.
"""

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["CandidatePolicy", "Condition", "Operator", "ToolRule"]

Operator = Literal["gt", "gte", "lt", "lte", "eq", "ne", "in", "not_in", "matches"]


class Condition(BaseModel):
    """A declarative predicate over one argument, for operators' config files."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    field: str = Field(description="Argument name, e.g. `amount`.")
    op: Operator
    value: Any

    def holds(self, arguments: dict[str, Any]) -> bool:
        if self.field not in arguments:
            return False
        actual = arguments[self.field]
        try:
            return _compare(self.op, actual, self.value)
        except (TypeError, re.error):
            # A value of the wrong type cannot prove the call harmless: ask.
            return True

    def describe(self) -> str:
        return f"{self.field} {self.op} {self.value!r}"


def _compare(op: Operator, actual: Any, expected: Any) -> bool:
    match op:
        case "gt":
            return bool(actual > expected)
        case "gte":
            return bool(actual >= expected)
        case "lt":
            return bool(actual < expected)
        case "lte":
            return bool(actual <= expected)
        case "eq":
            return bool(actual == expected)
        case "ne":
            return bool(actual != expected)
        case "in":
            return actual in expected
        case "not_in":
            return actual not in expected
        case "matches":
            return re.search(str(expected), str(actual)) is not None


class ToolRule(BaseModel):
    """When a candidate asks for one tool: always, or when any condition holds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    requires_approval: bool = False
    require_approval_when: tuple[Condition, ...] = Field(default=(), max_length=50)

    def asks(self, arguments: dict[str, Any]) -> bool:
        return self.requires_approval or any(c.holds(arguments) for c in self.require_approval_when)

    def reasons(self, tool: str, arguments: dict[str, Any]) -> list[str]:
        found = [f"{tool} always requires approval"] if self.requires_approval else []
        return found + [
            f"candidate: {c.describe()}" for c in self.require_approval_when if c.holds(arguments)
        ]


class CandidatePolicy(BaseModel):
    """A policy to try out: for each tool it names, its rule replaces the live one whole.

    Tools it does not name behave as they do live. `agent` limits it to one agent's calls.
    """

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            "examples": [
                {
                    "name": "transfer-250",
                    "agent": "banking",
                    "tools": {
                        "transfer": {
                            "require_approval_when": [{"field": "amount", "op": "gt", "value": 250}]
                        }
                    },
                }
            ]
        },
    )

    name: str = Field(default="candidate", min_length=1, max_length=100, pattern=r"^[\w.:-]+$")
    agent: str | None = Field(default=None, min_length=1, max_length=200)
    tools: dict[str, ToolRule] = Field(min_length=1, max_length=100)

    def covers(self, agent: str, tool: str) -> bool:
        return (self.agent is None or self.agent == agent) and tool in self.tools

    def asks(self, tool: str, arguments: dict[str, Any]) -> bool:
        return self.tools[tool].asks(arguments)
