"""Approval contracts: what an agent asks for and what a reviewer decided."""

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from hitl_contracts.base import Event
from hitl_contracts.plain import PlainObject, plain_json_problem

# The longest an approval may wait (and an escalation extend it): far beyond any real
# review, and far from the year 9999 that date arithmetic overflows at.
MAX_WAIT = timedelta(days=366)


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

    @model_validator(mode="after")
    def _plain_extras(self) -> Self:
        if problem := plain_json_problem(self.model_extra or {}, path="context"):
            raise ValueError(f"not plain JSON: {problem}")
        return self


class EditPolicy(BaseModel):
    """What a reviewer's `modify` may change, declared by the tool.

    Enforced by the approval service when the reviewer decides (422 with the reason)
    and again by the agent before anything runs: an edit may narrow what was asked,
    never widen it.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    editable: bool = Field(
        default=True, description="False: the arguments cannot be edited (approve or reject)."
    )
    locked: tuple[str, ...] = Field(
        default=(),
        description="Top-level arguments an edit must leave as requested.",
        examples=[["from_account", "to_account"]],
    )
    not_above: tuple[str, ...] = Field(
        default=(),
        description="Numeric arguments an edit may lower but not raise.",
        examples=[["amount"]],
    )


class ApprovalRequested(Event):
    """An agent paused a run and asks a human to approve one tool call."""

    correlation_id: str = Field(
        description="Identifies this approval end to end.", examples=["c0ffee-1234"]
    )
    run_id: str = Field(description="The paused run.")
    agent: str = Field(description="Agent name.", examples=["banking"])
    tool: str = Field(description="Tool the agent wants to call.", examples=["transfer"])
    arguments: PlainObject = Field(
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
    arguments_schema: PlainObject | None = Field(
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
        le=MAX_WAIT.total_seconds(),
        description="How long an escalation extends the deadline; unset: the approval "
        "service's policy decides.",
    )
    edit_policy: EditPolicy | None = Field(
        default=None,
        description="What a reviewer may change with `modify`; unset: anything the schema allows.",
    )

    @model_validator(mode="after")
    def _sane_deadline(self) -> Self:
        if self.expires_at - self.requested_at > MAX_WAIT:
            raise ValueError(f"expires_at is more than {MAX_WAIT.days} days after requested_at")
        return self


class ApprovalDecided(Event):
    """The one terminal decision of an approval, signed by the approval service."""

    correlation_id: str
    run_id: str
    decision: Decision
    arguments: PlainObject | None = Field(
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
    # Added in the second round (by addition; empty in older messages).
    agent: str = Field(default="", description="The agent of the run, so consumers can filter.")
    tool: str = Field(default="", description="The tool of the decided call.")
    tool_call_id: str = Field(default="", description="The model's id of the decided call.")
    key_id: str = Field(default="", description="Id of the key that signed this decision.")
    signature: str = Field(
        default="",
        description="Ed25519 signature (base64url) by the approval service over the "
        "canonical decision (see hitl_contracts.signing); consumers that act on a "
        "decision verify it against the service's published keys.",
    )
