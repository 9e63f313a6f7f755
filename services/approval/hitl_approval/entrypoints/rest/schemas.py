"""Public REST schemas of the approval API (separate from the domain)."""

from datetime import datetime
from typing import Any, Literal

from hitl_contracts import ApprovalDecided, ApprovalRequested
from pydantic import BaseModel, ConfigDict, Field, field_validator

from hitl_approval.domain.arguments import json_problems
from hitl_approval.domain.history import HistoryEvent
from hitl_approval.domain.model import Approval, Status
from hitl_approval.domain.policy import Policy
from hitl_approval.views import Row


class DecisionBody(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"decision": "approve", "comment": "Looks right"},
                {"decision": "modify", "arguments": {"to_account": "alice", "amount": 80}},
                {"decision": "reject", "comment": "Alice is not a known payee"},
            ]
        },
    )

    decision: Literal["approve", "reject", "modify"]
    arguments: dict[str, Any] | None = Field(
        default=None,
        description="Edited arguments; required for modify (checked against the request's "
        "arguments_schema), ignored otherwise.",
    )
    comment: str = Field(default="", max_length=4000, description="Goes back to the agent.")

    @field_validator("arguments")
    @classmethod
    def _plain_json(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is not None and (problem := json_problems(value)):
            raise ValueError(problem)
        return value


class CancelBody(BaseModel):
    model_config = ConfigDict(
        extra="forbid", json_schema_extra={"examples": [{"comment": "run cancelled by alice"}]}
    )

    comment: str = Field(default="", max_length=4000)


class ExpectedWaitView(BaseModel):
    p50_seconds: float = Field(description="Median time to a human decision, recent history.")
    p90_seconds: float = Field(description="90th percentile of the same.")
    decisions: int = Field(description="How many recent decisions the figures come from.")
    basis: Literal["tool", "agent", "all"] = Field(
        description="Whose history: this agent's tool, the agent, or every approval (the "
        "narrowest with at least 5 decisions in the last 7 days)."
    )


class ApprovalView(BaseModel):
    correlation_id: str = Field(examples=["0b6f3c9e-8d0a-4c55-a1c2-7f1e2d3c4b5a"])
    status: Status
    version: int = Field(description="Stream version; send it back in If-Match.")
    expires_at: datetime = Field(
        description="The deadline in force (the request's, capped by policy, or extended "
        "once by an escalation)."
    )
    escalated: bool = Field(description="The deadline was extended once (on_timeout=escalate).")
    approvers: list[str] = Field(
        description="Reviewers whose approval counts so far (quorum progress while pending)."
    )
    policy: Policy = Field(description="The rules this approval is decided under.")
    request: ApprovalRequested
    decision: ApprovalDecided | None = None
    expected_wait: ExpectedWaitView | None = Field(
        default=None,
        description="Pending approvals in listings and GET: how long a decision usually "
        "takes (null without enough recent history).",
    )

    @classmethod
    def of(cls, approval: Approval | Row) -> "ApprovalView":
        """From the approval's stream, or from its listing row (`views.Row`): the same view."""
        return cls(
            correlation_id=approval.correlation_id,
            status=approval.status,
            version=approval.version,
            expires_at=approval.expires_at,
            escalated=approval.escalated,
            approvers=approval.approvers,
            policy=approval.policy,
            request=approval.request,
            decision=approval.decision,
        )


class ApprovalPage(BaseModel):
    items: list[ApprovalView]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class HistoryItem(BaseModel):
    seq: int | None = Field(description="Position in the approval's stream; null for notes.")
    type: str = Field(
        description="requested, vote, escalated, approved, modified, rejected, expired, "
        "cancelled (the stream); notified, reminded, failed (the notifier's notes).",
        examples=["requested", "approved", "notified"],
    )
    at: datetime
    actor: str = Field(description="Reviewer, agent, `system` or `notifier`.", examples=["ann"])
    channel: str = Field(examples=["api", "web", "slack", "email", "system", "webhook"])
    detail: dict[str, Any]

    @classmethod
    def of(cls, event: HistoryEvent) -> "HistoryItem":
        return cls(
            seq=event.seq,
            type=event.type,
            at=event.at,
            actor=event.actor,
            channel=event.channel,
            detail=event.detail,
        )


class ErrorBody(BaseModel):
    detail: str = Field(
        description="What went wrong, for a person.",
        examples=[
            "no approval with correlation id 'c0ffee-1234'",
            "four-eyes policy: 'carol' submitted this task and may not approve it; another "
            "reviewer must (rejecting is allowed)",
        ],
    )


class InvalidBody(BaseModel):
    detail: str = Field(
        description="What is wrong with the request, for a person.",
        examples=["body.decision: Input should be 'approve', 'reject' or 'modify'"],
    )
    errors: list[dict[str, Any]] = Field(
        default_factory=list, description="Each problem, machine-readable (may be empty)."
    )


class ConflictBody(BaseModel):
    detail: str = Field(
        description="Why this action lost; `approval` is the state that holds.",
        examples=["approval c0ffee-1234 is already approved"],
    )
    approval: ApprovalView


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    ready: bool
    checks: dict[str, str] = Field(examples=[{"store": "ok", "broker": "ok"}])
