"""Approval contracts: what an agent asks for and what a reviewer decided."""

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from hitl_shared.contracts.base import Event


class RiskLevel(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"


class OnTimeout(StrEnum):
    REJECT = "reject"
    ESCALATE = "escalate"


class Decision(StrEnum):
    APPROVED = "approved"
    REJECTED = "rejected"
    MODIFIED = "modified"
    EXPIRED = "expired"
    CANCELLED = "cancelled"

    @property
    def allows_execution(self) -> bool:
        return self in (Decision.APPROVED, Decision.MODIFIED)


class Channel(StrEnum):
    API = "api"
    WEB = "web"
    SLACK = "slack"
    EMAIL = "email"
    SYSTEM = "system"


class RequestContext(BaseModel):
    """What a reviewer needs to judge the request."""

    model_config = ConfigDict(frozen=True, extra="allow")

    user_request: str = Field(description="The task as the user wrote it.")
    agent_reasoning: str = Field(default="", description="Why the agent wants to act.")


class ApprovalRequested(Event):
    """An agent paused a run and asks a human to approve one tool call."""

    correlation_id: str = Field(
        description="Identifies this approval end to end.", examples=["c0ffee-1234"]
    )
    run_id: str = Field(description="The paused run.")
    agent: str = Field(description="Agent name.", examples=["banking"])
    tool: str = Field(description="Tool the agent wants to call.", examples=["transfer"])
    arguments: dict[str, Any] = Field(
        description="Arguments as the agent proposed them.",
        examples=[{"to_account": "alice", "amount": 500}],
    )
    tool_call_id: str = Field(default="", description="The model's id for this tool call.")
    reason: str = Field(description="Why approval is required (the policy that fired).")
    risk_level: RiskLevel = Field(default=RiskLevel.MEDIUM)
    context: RequestContext
    requested_at: AwareDatetime
    expires_at: AwareDatetime
    on_timeout: OnTimeout = Field(default=OnTimeout.REJECT)
    arguments_schema: dict[str, Any] | None = Field(
        default=None, description="JSON schema the (edited) arguments must satisfy."
    )
    requested_by: str = Field(default="", description="Who submitted the task, if known.")
    escalated: bool = Field(
        default=False,
        description="True on the copy the approval service re-publishes when an "
        "`on_timeout=escalate` request reaches its deadline: same correlation_id, the "
        "extended `expires_at`; notifiers use it to reach the escalation route.",
    )
    escalation_seconds: float | None = Field(
        default=None,
        gt=0,
        description="How long an escalation extends the deadline; unset: the approval "
        "service's policy decides.",
    )


class ApprovalDecided(Event):
    """The one terminal decision of an approval."""

    correlation_id: str
    run_id: str
    decision: Decision
    arguments: dict[str, Any] | None = Field(
        default=None, description="Final arguments, for approved and modified decisions."
    )
    reviewer: str = Field(description="Who decided; `system` for expiry and cancellation.")
    channel: Channel
    comment: str = ""
    decided_at: datetime
    approvers: list[str] = Field(
        default_factory=list,
        description="Everyone whose approval counted (more than one under a quorum policy).",
    )
