"""Agent contracts: tasks in, run lifecycle out."""

from enum import StrEnum
from typing import Any

from pydantic import Field

from hitl_shared.contracts.base import Event


class TaskSubmitted(Event):
    """A producer asks an agent to do something."""

    task_id: str = Field(description="Producer-chosen id; also the run id.")
    input: str = Field(description="The request in plain language.", min_length=1)
    agent: str = Field(default="banking", examples=["banking", "files"])
    metadata: dict[str, Any] = Field(default_factory=dict)


class RunEventType(StrEnum):
    STARTED = "started"
    AWAITING_APPROVAL = "awaiting_approval"
    RESUMED = "resumed"
    TOOL_EXECUTED = "tool_executed"
    COMPLETED = "completed"
    FAILED = "failed"
    # Added (schema 1, by addition): finer steps for run streaming.
    MODEL_REPLIED = "model_replied"
    DECISION_APPLIED = "decision_applied"
    CANCELLED = "cancelled"


class RunEvent(Event):
    """One step of a run's lifecycle, published on `agent.runs`."""

    run_id: str
    task_id: str
    type: RunEventType
    detail: dict[str, Any] = Field(default_factory=dict)
    seq: int | None = Field(
        default=None,
        ge=1,
        description="Position in the run's event stream (1, 2, ...); a redelivered event "
        "keeps its seq and event_id.",
    )
