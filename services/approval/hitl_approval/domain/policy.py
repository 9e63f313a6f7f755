"""Approval policies: who may decide, how many must approve, and what a timeout does.

Operators configure a `PolicyBook` (a default plus rules matched by agent, tool and
risk level, later rules overriding earlier ones field by field). Each approval keeps
the `Policy` resolved for it when it was stored, so a policy change never rewrites
the terms of a request a reviewer is already looking at.
"""

from typing import Any

from hitl_contracts import ApprovalRequested, OnTimeout, RiskLevel
from hitl_contracts.approval import MAX_WAIT
from pydantic import BaseModel, ConfigDict, Field

# Waits are bounded like the contracts bound a request's: date arithmetic on a huge
# duration overflows, and the sweeper would fail on it at every pass.
MAX_SECONDS = MAX_WAIT.total_seconds()


class Policy(BaseModel):
    """The resolved rules of one approval."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    quorum: int = Field(
        default=1, ge=1, le=20, description="Distinct approvals needed; any rejection ends it."
    )
    groups: list[str] = Field(
        default_factory=list, description="Reviewer groups allowed to decide; empty: anyone."
    )
    four_eyes: bool = Field(
        default=True, description="The submitter of the task may not approve its own run."
    )
    timeout_seconds: float | None = Field(
        default=None,
        gt=0,
        le=MAX_SECONDS,
        description="Ceiling on the wait: expires_at is at most requested_at + this.",
    )
    on_timeout: OnTimeout | None = Field(
        default=None, description="Overrides the request's on_timeout."
    )
    escalation_seconds: float | None = Field(
        default=None,
        gt=0,
        le=MAX_SECONDS,
        description="How long an escalation extends the deadline; unset: as long again "
        "as the original wait.",
    )


class PolicyLayer(BaseModel):
    """Fields a default or a rule sets; unset fields inherit."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    quorum: int | None = Field(default=None, ge=1, le=20)
    groups: list[str] | None = None
    four_eyes: bool | None = None
    timeout_seconds: float | None = Field(default=None, gt=0, le=MAX_SECONDS)
    on_timeout: OnTimeout | None = None
    escalation_seconds: float | None = Field(default=None, gt=0, le=MAX_SECONDS)

    def fields(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True, exclude={"match"})


class Match(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    agent: str | None = None
    tool: str | None = None
    risk_level: RiskLevel | None = None

    def matches(self, request: ApprovalRequested) -> bool:
        return (
            (self.agent is None or self.agent == request.agent)
            and (self.tool is None or self.tool == request.tool)
            and (self.risk_level is None or self.risk_level is request.risk_level)
        )


class Rule(PolicyLayer):
    match: Match = Field(default_factory=Match)


class PolicyBook(BaseModel):
    """`APPROVAL_POLICIES` / `APPROVAL_POLICIES_FILE`: a default and ordered rules."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    default: PolicyLayer = Field(default_factory=PolicyLayer)
    rules: list[Rule] = Field(default_factory=list)

    def resolve(self, request: ApprovalRequested) -> Policy:
        fields = self.default.fields()
        for rule in self.rules:
            if rule.match.matches(request):
                fields.update(rule.fields())
        return Policy(**fields)
