"""Agent contracts: tasks in, run lifecycle out."""

from enum import StrEnum
from typing import Any

from pydantic import Field

from hitl_contracts.base import Event
from hitl_contracts.plain import PlainObject


class TaskSubmitted(Event):
    """A producer asks an agent to do something."""

    task_id: str = Field(description="Producer-chosen id; also the run id.")
    input: str = Field(description="The request in plain language.", min_length=1)
    agent: str = Field(
        default="",
        description="The agent to run. Empty (older messages): the deployment's default "
        "agent handles it.",
        examples=["banking", "invoices"],
    )
    metadata: PlainObject = Field(default_factory=dict)
    submitted_by: str = Field(
        default="",
        description="The authenticated principal that submitted the task (the agent "
        "service's API sets it from the caller's token; on Kafka only producers the ACLs "
        "allow to write agent.tasks may send tasks, and they vouch for it). Four-eyes "
        "keeps this person from approving the run.",
    )


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
    # Added (second round): a decision the agent refused to act on (bad signature, or
    # not about the call it holds); the run stays as it was.
    DECISION_REFUSED = "decision_refused"
    # Added (oversight): a person interrupted the run; it paused at its step boundary
    # with a `supervisor` approval (`detail`: reason, by, correlation_id).
    INTERRUPTED = "interrupted"
    # Added (oversight): the run's agent is halted; the run paused at its step boundary
    # and takes no step until an admin resumes the agent (`detail`: reason, by).
    HALTED = "halted"
    # Added (issue 17): what a shadow (candidate) policy would have done with a tool
    # call; the run went on as the live policy said. Detail: candidate, tool,
    # tool_call_id, arguments, live, shadow ("ask" | "run").
    SHADOW_DECISION = "shadow_decision"


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
