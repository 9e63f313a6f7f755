"""Routing rules: which channels and recipients hear about an approval.

Rules are tried in order and the first that matches wins; a rule matches when each
of its non-empty criteria (agents, tools, risk levels) contains the request's value.
No match means the default route. A rule's `escalation` targets are notified when
the approval escalates on timeout; without one, the rule's own targets are.
"""

from collections.abc import Iterator
from dataclasses import dataclass

from hitl_contracts import ApprovalRequested, RiskLevel
from pydantic import BaseModel, ConfigDict, Field

from hitl_notifier.domain.deliveries import CHANNELS, Target


@dataclass(frozen=True)
class Targets:
    slack: tuple[str, ...] = ()
    email: tuple[str, ...] = ()
    webhook: tuple[str, ...] = ()

    def __iter__(self) -> Iterator[Target]:
        for channel in CHANNELS:
            for recipient in dict.fromkeys(getattr(self, channel)):
                yield Target(channel, recipient)

    def __bool__(self) -> bool:
        return bool(self.slack or self.email or self.webhook)


class TargetsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    slack: list[str] = Field(default_factory=list, description="Slack channel ids (C0123...).")
    email: list[str] = Field(default_factory=list, description="Email addresses.")
    webhook: list[str] = Field(default_factory=list, description="Webhook URLs.")

    def targets(self) -> Targets:
        return Targets(tuple(self.slack), tuple(self.email), tuple(self.webhook))


class Route(TargetsConfig):
    name: str = ""
    agents: list[str] = Field(default_factory=list, description="Empty: any agent.")
    tools: list[str] = Field(default_factory=list, description="Empty: any tool.")
    risk_levels: list[RiskLevel] = Field(default_factory=list, description="Empty: any risk.")
    escalation: TargetsConfig | None = None

    def matches(self, request: ApprovalRequested) -> bool:
        return (
            (not self.agents or request.agent in self.agents)
            and (not self.tools or request.tool in self.tools)
            and (not self.risk_levels or request.risk_level in self.risk_levels)
        )


class Router:
    def __init__(self, routes: list[Route], *, default: Targets) -> None:
        self.routes = routes
        self.default = default

    def route_for(self, request: ApprovalRequested) -> Route | None:
        return next((r for r in self.routes if r.matches(request)), None)

    def targets(self, request: ApprovalRequested, *, escalation: bool = False) -> Targets:
        route = self.route_for(request)
        if route is None:
            return self.default
        if escalation and route.escalation is not None:
            return route.escalation.targets()
        return route.targets()

    def reaches_anyone(self) -> bool:
        """Whether any approval could be sent to anyone (default, a route, an escalation)."""
        return any(self.all_targets())

    def all_targets(self) -> list[Targets]:
        found = [self.default]
        for route in self.routes:
            found.append(route.targets())
            if route.escalation:
                found.append(route.escalation.targets())
        return found
