"""A run: the whole state of one agent task, enough to resume it anywhere, any time.

Pure data and rules, no I/O. The service layer loads a run, asks it what is next,
does the I/O (model, tools) and stores the new state as the next checkpoint.
"""

from datetime import datetime
from enum import StrEnum
from typing import Any

from hitl_contracts import RiskLevel
from hitl_contracts.base import utcnow
from pydantic import BaseModel, Field, computed_field


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    AWAITING_APPROVAL = "awaiting_approval"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    # Accepted, but no live worker hosts its agent: it starts when one does.
    UNHOSTED = "unhosted"

    @property
    def terminal(self) -> bool:
        return self in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED)


class Style(StrEnum):
    """How an agent halts: both persist and resume the same way."""

    # The model calls tools; each call is checked before it executes.
    TOOLS = "tools"
    # The model returns a typed action plan; actions that need a human are held.
    ROUTER = "router"


class PendingKind(StrEnum):
    # A tool call (or plan action) the model asked for.
    TOOL = "tool"
    # The loop/budget guard stopped the run and asks whether to go on.
    GUARD = "guard"


class Action(BaseModel):
    """One thing the model asked for in a turn: a tool call or a plan entry."""

    call_id: str
    tool: str
    # The model's arguments as JSON text, exactly as received (validated later).
    arguments: str = "{}"
    # Router style only: how sure the model says it is about this action.
    confidence: float | None = None


class Result(BaseModel):
    call_id: str
    content: str


class Turn(BaseModel):
    """The actions of one model reply and their results as they come in."""

    style: Style
    actions: list[Action]
    results: list[Result] = Field(default_factory=list)
    # Calls held for a human decision; their result arrives with the decision.
    held: list[str] = Field(default_factory=list)
    # What the model said about this turn, shown to reviewers.
    reasoning: str = ""

    def result_of(self, call_id: str) -> str | None:
        return next((r.content for r in self.results if r.call_id == call_id), None)

    def unhandled(self) -> list[Action]:
        done = {r.call_id for r in self.results} | set(self.held)
        return [a for a in self.actions if a.call_id not in done]

    @property
    def complete(self) -> bool:
        return all(self.result_of(a.call_id) is not None for a in self.actions)

    def add_result(self, call_id: str, content: str) -> None:
        if self.result_of(call_id) is None:
            self.results.append(Result(call_id=call_id, content=content))


class PendingCall(BaseModel):
    """A call held for a human decision (one approval request)."""

    correlation_id: str
    tool_call_id: str
    tool: str
    arguments: dict[str, Any]
    reason: str
    risk_level: RiskLevel
    requested_at: datetime
    expires_at: datetime
    kind: PendingKind = PendingKind.TOOL
    # What the reviewer is shown besides the arguments (e.g. the files to delete).
    context: dict[str, Any] = Field(default_factory=dict)
    reasoning: str = ""
    resolved: bool = False
    decision: str | None = None
    comment: str = ""
    reviewer: str = ""


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @computed_field  # type: ignore[prop-decorator]
    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class Budget(BaseModel):
    """Per-run guard settings, fixed when the run starts."""

    max_steps: int = 12
    max_tokens: int = 200_000
    max_repeated_failures: int = 3


class Limits(BaseModel):
    """Current ceilings; a human who lets a guarded run go on raises them."""

    steps: int
    tokens: int


class Failure(BaseModel):
    """Identical failing calls, counted so a run cannot spin on one broken tool."""

    key: str
    tool: str
    arguments: str
    count: int = 0
    last_error: str = ""


class Run(BaseModel):
    run_id: str
    task_id: str
    agent: str
    input: str
    style: Style = Style.TOOLS
    status: RunStatus = RunStatus.QUEUED
    # OpenAI chat messages, exactly as sent to and received from the model.
    messages: list[dict[str, Any]] = Field(default_factory=list)
    turn: Turn | None = None
    pending: list[PendingCall] = Field(default_factory=list)
    output: str | None = None
    error: str | None = None
    steps: int = 0
    usage: Usage = Field(default_factory=Usage)
    budget: Budget = Field(default_factory=Budget)
    limits: Limits | None = None
    failures: list[Failure] = Field(default_factory=list)
    metadata: dict[str, Any] = Field(default_factory=dict)
    # The authenticated principal that submitted the task (never from metadata):
    # the approval's requested_by, so four-eyes keeps them from approving it.
    submitted_by: str = ""
    # sha256 of the API request that started it (input, agent, metadata), for
    # Idempotency-Key replays; empty for tasks from Kafka.
    request_digest: str = ""
    # Money this run moved without a human's approval, against its approval threshold.
    moved_unreviewed: float = 0.0
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)
    # Position in the run's checkpoint stream, and events emitted so far.
    seq: int = 0
    events: int = 0
    # Listed among runs a replica may rescue (from submit until it first pauses or ends).
    active: bool = False
    # False: stored by a worker that does not host the agent (the task as received,
    # no prompt yet); the hosting worker replaces it with the real start.
    prepared: bool = True

    def model_post_init(self, context: Any, /) -> None:
        if self.limits is None:
            self.limits = Limits(steps=self.budget.max_steps, tokens=self.budget.max_tokens)

    @property
    def in_progress(self) -> bool:
        return self.status in (RunStatus.QUEUED, RunStatus.RUNNING)

    @property
    def ceilings(self) -> Limits:
        assert self.limits is not None
        return self.limits

    def open_calls(self) -> list[PendingCall]:
        return [p for p in self.pending if not p.resolved]

    def find_pending(self, correlation_id: str) -> PendingCall | None:
        return next((p for p in self.pending if p.correlation_id == correlation_id), None)

    def close_turn(self) -> bool:
        """Hand the finished turn's results to the model's history; False if not finished."""
        turn = self.turn
        if turn is None or not turn.complete:
            return False
        if turn.style is Style.TOOLS:
            for action in turn.actions:
                self.messages.append(
                    {
                        "role": "tool",
                        "tool_call_id": action.call_id,
                        "content": turn.result_of(action.call_id),
                    }
                )
        else:
            self.messages.append({"role": "user", "content": plan_results(turn)})
        self.turn = None
        return True

    def extend_limits(self) -> None:
        """A human let a guarded run go on: give it a fresh budget from here."""
        self.limits = Limits(
            steps=self.steps + self.budget.max_steps,
            tokens=self.usage.total_tokens + self.budget.max_tokens,
        )
        self.failures = []


PLAN_RESULTS_HEADER = "Results of your action plan:"


def plan_results(turn: Turn) -> str:
    lines = [PLAN_RESULTS_HEADER]
    for number, action in enumerate(turn.actions, start=1):
        lines.append(
            f"{number}. {action.tool} {action.arguments}: {turn.result_of(action.call_id)}"
        )
    return "\n".join(lines)
