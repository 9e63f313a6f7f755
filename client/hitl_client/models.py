"""What the approval API answers, typed; unknown fields are ignored so newer servers work."""

from datetime import datetime
from typing import Any, Literal

from hitl_contracts import ApprovalDecided, ApprovalRequested
from pydantic import BaseModel, ConfigDict, Field

Status = Literal["pending", "approved", "modified", "rejected", "expired", "cancelled"]
Verdict = Literal["approve", "reject", "modify"]


class ApprovalState(BaseModel):
    """One approval as the service holds it (`GET /v1/approvals/{id}`)."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    correlation_id: str
    status: Status
    version: int
    expires_at: datetime
    escalated: bool = False
    approvers: list[str] = Field(default_factory=list)
    policy: dict[str, Any] = Field(default_factory=dict)
    request: ApprovalRequested
    decision: ApprovalDecided | None = None

    @property
    def terminal(self) -> bool:
        return self.status != "pending"


class ApprovalPage(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    items: list[ApprovalState]
    next_cursor: str | None = None
