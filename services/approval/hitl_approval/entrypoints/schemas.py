"""Public REST schemas of the approval API (separate from the domain)."""

from datetime import datetime
from typing import Any, Literal

from hitl_shared.contracts import ApprovalDecided, ApprovalRequested
from pydantic import BaseModel, ConfigDict, Field

from hitl_approval.domain.model import Approval


class DecisionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["approve", "reject", "modify"] = Field(examples=["approve"])
    arguments: dict[str, Any] | None = Field(
        default=None,
        description="Edited arguments; required for modify, ignored otherwise.",
        examples=[{"to_account": "alice", "amount": 80}],
    )
    comment: str = Field(default="", max_length=4000, examples=["Looks right"])


class ApprovalView(BaseModel):
    correlation_id: str
    status: str = Field(examples=["pending"])
    version: int = Field(description="Stream version; send it back in If-Match.")
    request: ApprovalRequested
    decision: ApprovalDecided | None = None

    @classmethod
    def of(cls, approval: Approval) -> "ApprovalView":
        return cls(
            correlation_id=approval.correlation_id,
            status=approval.status.value,
            version=approval.version,
            request=approval.request,
            decision=approval.decision,
        )

    @classmethod
    def of_projection(cls, doc: dict[str, Any]) -> "ApprovalView":
        return cls(
            correlation_id=doc["_id"],
            status=doc["status"],
            version=doc["version"],
            request=ApprovalRequested.model_validate(doc["request"]),
            decision=ApprovalDecided.model_validate(doc["decision"])
            if doc.get("decision")
            else None,
        )


class ApprovalPage(BaseModel):
    items: list[ApprovalView]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


class HistoryItem(BaseModel):
    seq: int
    type: str = Field(examples=["requested", "decided"])
    at: datetime
    actor: str
    channel: str
    detail: dict[str, Any]


class ErrorBody(BaseModel):
    detail: str


class ConflictBody(BaseModel):
    detail: str
    approval: ApprovalView
