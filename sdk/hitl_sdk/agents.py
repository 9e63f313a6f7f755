"""Agents and apps: what a package hands to the runtime."""

import inspect
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias, TypeVar

from hitl_contracts import RiskLevel
from hitl_contracts.approval import EditPolicy

from hitl_sdk.tools import (
    Approval,
    CheckFunction,
    DefinitionError,
    PreviewFunction,
    Tool,
    ToolArgs,
    ToolContext,
    TotalsFunction,
    tool,
)

__all__ = ["Agent", "App", "Hook", "OfflinePlan", "Resources", "Style"]

Style: TypeAlias = Literal["tools", "router"]
# The user's request -> the tool calls it means, as (tool name, arguments).
OfflinePlan: TypeAlias = Callable[[str], list[tuple[str, dict[str, Any]]]]

# Agent names end up in consumer group names and URLs: keep them plain.
_AGENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")

A = TypeVar("A", bound=ToolArgs)


class Agent:
    """An agent: a name, a system prompt, a halt style and its tools.

    `style="tools"`: the model calls tools (OpenAI tool calling); a call that needs
    approval pauses the run. `style="router"`: the model returns an action plan
    (structured output); actions that need approval, or that the model is less sure
    of than `confidence_threshold`, pause the run.

    Guards left as None take the runtime's defaults (AGENT_MAX_STEPS, ...); the
    operators' policy file may tighten any of this without code changes.

    `offline_plan`: a deterministic stand-in for the model when the runtime has no
    OPENAI_API_KEY (demos, tests): it reads the request and returns the tool calls.
    """

    def __init__(
        self,
        name: str,
        *,
        system_prompt: str,
        style: Style = "tools",
        tools: Iterable[Tool] = (),
        max_steps: int | None = None,
        token_budget: int | None = None,
        max_repeated_failures: int | None = None,
        confidence_threshold: float | None = None,
        description: str = "",
        offline_plan: OfflinePlan | None = None,
    ) -> None:
        if not isinstance(name, str) or not _AGENT_NAME.match(name):
            raise DefinitionError(
                f"agent name {name!r}: 1-64 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit"
            )
        if style not in ("tools", "router"):
            raise DefinitionError(f"agent {name!r}: style must be 'tools' or 'router'")
        if not system_prompt.strip():
            raise DefinitionError(f"agent {name!r}: the system prompt is empty")
        for field, value in (
            ("max_steps", max_steps),
            ("token_budget", token_budget),
            ("max_repeated_failures", max_repeated_failures),
        ):
            if value is not None and value < 1:
                raise DefinitionError(f"agent {name!r}: {field} must be at least 1")
        if confidence_threshold is not None and not 0 <= confidence_threshold <= 1:
            raise DefinitionError(f"agent {name!r}: confidence_threshold must be within 0..1")
        self.name = name
        self.system_prompt = system_prompt
        self.style: Style = style
        self.max_steps = max_steps
        self.token_budget = token_budget
        self.max_repeated_failures = max_repeated_failures
        self.confidence_threshold = confidence_threshold
        self.description = description
        self.offline_plan = offline_plan
        self._tools: dict[str, Tool] = {}
        for t in tools:
            self.add_tool(t)

    @property
    def tools(self) -> list[Tool]:
        return list(self._tools.values())

    def add_tool(self, t: Tool) -> Tool:
        if not isinstance(t, Tool):
            raise DefinitionError(
                f"agent {self.name!r}: {t!r} is not a Tool (declare it with @tool(...))"
            )
        if t.name in self._tools:
            raise DefinitionError(f"agent {self.name!r}: two tools named {t.name!r}")
        self._tools[t.name] = t
        return t

    def tool(
        self,
        *,
        name: str | None = None,
        description: str | None = None,
        approval: Approval | None = None,
        risk: RiskLevel | str = RiskLevel.MEDIUM,
        timeout_seconds: float | None = None,
        idempotent: bool = False,
        preview: PreviewFunction | None = None,
        edit_policy: EditPolicy | None = None,
        approval_check: CheckFunction | None = None,
        totals: TotalsFunction | None = None,
    ) -> Callable[[Callable[[A, ToolContext], Awaitable[str]]], Tool]:
        """Declare a tool of this agent; the same options as `hitl_sdk.tool`."""
        declare = tool(
            name=name,
            description=description,
            approval=approval,
            risk=risk,
            timeout_seconds=timeout_seconds,
            idempotent=idempotent,
            preview=preview,
            edit_policy=edit_policy,
            approval_check=approval_check,
            totals=totals,
        )

        def add(fn: Callable[[A, ToolContext], Awaitable[str]]) -> Tool:
            return self.add_tool(declare(fn))

        return add

    def __repr__(self) -> str:
        return f"Agent({self.name!r}, style={self.style!r}, tools={list(self._tools)})"


@dataclass(frozen=True)
class Resources:
    """What the runtime lends an app at start-up."""

    # The hitl deployment's MongoDB database (a `pymongo.AsyncDatabase`), for apps
    # that keep state; use collection names of your own.
    database: Any
    # The runtime's environment name (HITL_ENV): development, test or production.
    environment: str = "development"


Hook: TypeAlias = Callable[[Resources], Awaitable[None]]
H = TypeVar("H", bound=Hook)


class App:
    """What a package hands the runtime: its agents, and optionally HTTP routes and
    start-up / shut-down hooks.

    Run it with `hitl-agent --app yourpackage.module:app`, or declare it under the
    `hitl.apps` entry point group so the runtime finds it when none is named.
    `routers` are FastAPI `APIRouter`s served by the agent service beside /v1/runs.
    """

    def __init__(
        self,
        agents: Iterable[Agent] = (),
        *,
        routers: Iterable[Any] = (),
        name: str = "",
    ) -> None:
        self.name = name
        self.routers = list(routers)
        self.startup: list[Hook] = []
        self.shutdown: list[Hook] = []
        self._agents: dict[str, Agent] = {}
        for agent in agents:
            self.add_agent(agent)

    @property
    def agents(self) -> list[Agent]:
        return list(self._agents.values())

    def add_agent(self, agent: Agent) -> Agent:
        if not isinstance(agent, Agent):
            raise DefinitionError(f"{agent!r} is not an Agent")
        if agent.name in self._agents:
            raise DefinitionError(f"two agents named {agent.name!r} in one app")
        self._agents[agent.name] = agent
        return agent

    def on_startup(self, hook: H) -> H:
        """Decorate `async def hook(resources: Resources) -> None`; runs before any task."""
        self.startup.append(_hook(hook, "on_startup"))
        return hook

    def on_shutdown(self, hook: H) -> H:
        """Decorate `async def hook(resources: Resources) -> None`; runs at shut-down."""
        self.shutdown.append(_hook(hook, "on_shutdown"))
        return hook

    def __repr__(self) -> str:
        return f"App({self.name or 'unnamed'}, agents={list(self._agents)})"


def _hook(hook: Hook, kind: str) -> Hook:
    if not inspect.iscoroutinefunction(hook):
        raise DefinitionError(f"{kind}: {hook!r} must be `async def hook(resources)`")
    return hook
