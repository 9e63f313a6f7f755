"""Approval policies: declared on tools, tightened per agent by operators, enforced in code.

Every rule can only add a reason to ask a human; none removes one. A model that
claims an action needs no confirmation changes nothing here.
"""

from dataclasses import dataclass, field, replace

from hitl_contracts import RiskLevel
from hitl_contracts.approval import EditPolicy
from hitl_contracts.rules import Condition
from hitl_sdk import Movement
from hitl_sdk import ToolArgs as PolicyArgs
from pydantic import BaseModel, ConfigDict, Field

from hitl_agent.domain.run import Style

__all__ = [
    "AgentPolicy",
    "Condition",
    "Movement",
    "PolicyArgs",
    "ToolOverride",
    "ToolPolicy",
    "approval_reasons",
    "riskier",
]

_RISK_ORDER = list(RiskLevel)


def riskier(a: RiskLevel, b: RiskLevel) -> RiskLevel:
    return max(a, b, key=_RISK_ORDER.index)


class ToolOverride(BaseModel):
    """An operator's tightening of one tool's policy (config file)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    requires_approval: bool = False
    risk_level: RiskLevel | None = None
    timeout_seconds: float | None = Field(default=None, gt=0)
    require_approval_when: tuple[Condition, ...] = ()


@dataclass(frozen=True)
class ToolPolicy:
    """What a tool declares in code; `tightened` merges an operator's override."""

    requires_approval: bool = False
    risk_level: RiskLevel = RiskLevel.MEDIUM
    timeout_seconds: float | None = None
    conditions: tuple[Condition, ...] = ()
    # What a reviewer's edit may change; sent with each approval request (the approval
    # service enforces it) and checked again before an edited call runs. None: any
    # edit the arguments' schema accepts.
    edit: EditPolicy | None = None

    def tightened(self, override: ToolOverride | None) -> "ToolPolicy":
        if override is None:
            return self
        return replace(
            self,
            requires_approval=self.requires_approval or override.requires_approval,
            risk_level=riskier(self.risk_level, override.risk_level or self.risk_level),
            timeout_seconds=override.timeout_seconds or self.timeout_seconds,
            conditions=self.conditions + override.require_approval_when,
        )


@dataclass(frozen=True)
class AgentPolicy:
    style: Style = Style.TOOLS
    # Router style: an action the model is less sure of than this needs a human.
    confidence_threshold: float = 0.0
    max_steps: int = 12
    token_budget: int = 200_000
    max_repeated_failures: int = 3
    tools: dict[str, ToolOverride] = field(default_factory=dict)


def approval_reasons(
    tool: str,
    policy: ToolPolicy,
    args: PolicyArgs,
    *,
    confidence: float | None = None,
    threshold: float = 0.0,
) -> list[str]:
    """Every reason this call needs a human; empty means it may run now."""
    reasons: list[str] = []
    if policy.requires_approval:
        reasons.append(f"{tool} always requires approval")
    if (predicate := args.approval_reason()) is not None:
        reasons.append(predicate)
    dumped = args.model_dump(mode="json")
    reasons += [f"operator policy: {c.describe()}" for c in policy.conditions if c.holds(dumped)]
    if confidence is not None and confidence < threshold:
        reasons.append(f"model confidence {confidence:.2f} is below the {threshold:.2f} threshold")
    return reasons
