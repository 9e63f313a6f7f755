"""A run: the whole state of one agent task, enough to resume it anywhere, any time."""

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from hitl_shared.contracts import RiskLevel
from pydantic import BaseModel, Field


def utcnow() -> datetime:
    return datetime.now(UTC)


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    AWAITING_APPROVAL = "awaiting_approval"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)


class PendingCall(BaseModel):
    """A tool call held for a human decision."""

    correlation_id: str
    tool_call_id: str
    tool: str
    arguments: dict[str, Any]
    reason: str
    risk_level: RiskLevel
    requested_at: datetime
    expires_at: datetime
    published: bool = False
    resolved: bool = False
    decision: str | None = None
    comment: str = ""


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0


class Run(BaseModel):
    run_id: str
    task_id: str
    agent: str
    input: str
    status: RunStatus = RunStatus.QUEUED
    # OpenAI chat messages, exactly as sent to and received from the model.
    messages: list[dict[str, Any]] = Field(default_factory=list)
    pending: list[PendingCall] = Field(default_factory=list)
    output: str | None = None
    error: str | None = None
    steps: int = 0
    usage: Usage = Field(default_factory=Usage)
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    version: int = 0

    def open_calls(self) -> list[PendingCall]:
        return [p for p in self.pending if not p.resolved]

    def find_pending(self, correlation_id: str) -> PendingCall | None:
        return next((p for p in self.pending if p.correlation_id == correlation_id), None)

    def add_tool_result(self, tool_call_id: str, content: str) -> None:
        self.messages.append({"role": "tool", "tool_call_id": tool_call_id, "content": content})
