"""REST routes of the agent service: runs and their cancellation (apps may add routes)."""

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from hitl_contracts import TaskSubmitted
from pydantic import BaseModel, ConfigDict, Field

from hitl_agent.adapters.workers import WorkerRegistry
from hitl_agent.domain.run import Limits, Run, RunStatus, Style, Usage
from hitl_agent.service_layer.agents import UnknownAgent
from hitl_agent.service_layer.requests import summary
from hitl_agent.service_layer.runner import InvalidTask, NotCancellable, Runner, UnknownRun

router = APIRouter(tags=["runs"])


class RunCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: str = Field(min_length=1, max_length=20_000, examples=["Transfer 500 to Alice"])
    agent: str = Field(
        default="",
        description="The agent to run: any agent a worker of this deployment hosts. "
        "Empty: the deployment's AGENT_DEFAULT_AGENT.",
        examples=["banking", "invoices"],
    )
    metadata: dict[str, Any] = Field(
        default_factory=dict,
        description="Free-form; `submitted_by` becomes the approval's requested_by "
        "(the approval service refuses that person as the reviewer).",
        examples=[{"submitted_by": "carol"}],
    )


class RunAccepted(BaseModel):
    run_id: str
    status: RunStatus


class RunCancel(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="cancelled by request", max_length=2_000)


class PendingApproval(BaseModel):
    correlation_id: str
    tool: str
    tool_call_id: str
    arguments: dict[str, Any]
    reason: str
    risk_level: str
    kind: str
    expires_at: str
    context: dict[str, Any]


class RunPublic(BaseModel):
    run_id: str
    agent: str
    style: Style
    input: str
    status: RunStatus
    pending_approvals: list[PendingApproval]
    output: str | None
    error: str | None
    steps: int
    usage: Usage
    limits: Limits
    messages: list[dict[str, Any]]
    events: int = Field(description="Lifecycle events so far; see /v1/runs/{run_id}/events.")

    @classmethod
    def of(cls, run: Run) -> "RunPublic":
        return cls(
            run_id=run.run_id,
            agent=run.agent,
            style=run.style,
            input=run.input,
            status=run.status,
            pending_approvals=[
                PendingApproval.model_validate(summary(p)) for p in run.open_calls()
            ],
            output=run.output,
            error=run.error,
            steps=run.steps,
            usage=run.usage,
            limits=run.ceilings,
            messages=run.messages,
            events=run.events,
        )


def get_runner(request: Request) -> Runner:
    runner: Runner = request.app.state.runner
    return runner


RunnerDep = Annotated[Runner, Depends(get_runner)]


async def existing_run(run_id: str, runner: RunnerDep) -> Run:
    run = await runner.get(run_id)
    if run is None:
        raise HTTPException(404, f"no run with id {run_id!r}")
    return run


RunDep = Annotated[Run, Depends(existing_run)]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "No such run"}}


@router.post(
    "/v1/runs",
    status_code=202,
    response_model=RunAccepted,
    responses={422: {"description": "Unknown agent or bad body"}},
)
async def create_run(body: RunCreate, runner: RunnerDep, request: Request) -> RunAccepted:
    """Start a run. Its status is `queued`, or `unhosted` when no live worker hosts the
    agent (yet): the run starts when one does."""
    agent = body.agent or request.app.state.settings.agent_default_agent
    if not agent:
        raise HTTPException(422, "name the agent to run (this deployment has no default agent)")
    task = TaskSubmitted(
        task_id=str(uuid.uuid4()), input=body.input, agent=agent, metadata=body.metadata
    )
    try:
        if runner.hosts(task.agent):
            run = await runner.submit(task)
        else:
            run = await _hold(task, runner, request)
    except (UnknownAgent, InvalidTask) as exc:
        raise HTTPException(422, str(exc)) from None
    # The run is stored (queued): if this publish fails, the relay starts it later.
    await request.app.state.submit_task(task)
    return RunAccepted(run_id=run.run_id, status=run.status)


async def _hold(task: TaskSubmitted, runner: Runner, request: Request) -> Run:
    """A task for an agent another worker hosts, or one no live worker hosts right now."""
    workers: WorkerRegistry = request.app.state.workers
    live, known = await workers.agents()
    if task.agent not in live | known:
        hosted = sorted(live | set(runner.agents))
        raise UnknownAgent(f"unknown agent {task.agent!r}; hosted: {hosted}")
    run, stored = await runner.hold(task, hosted_elsewhere=task.agent in live)
    if stored and run.status is RunStatus.UNHOSTED:
        request.app.state.on_unhosted(task.agent)
    return run


@router.get("/v1/runs/{run_id}", response_model=RunPublic, responses=NOT_FOUND)
async def get_run(run: RunDep) -> RunPublic:
    return RunPublic.of(run)


@router.post(
    "/v1/runs/{run_id}/cancel",
    response_model=RunPublic,
    responses={**NOT_FOUND, 409: {"description": "The run already ended; `run` is its state"}},
)
async def cancel_run(
    run: RunDep, runner: RunnerDep, body: RunCancel | None = None
) -> RunPublic | JSONResponse:
    """Cancel a run that has not ended; its pending approvals become `cancelled`."""
    reason = (body or RunCancel()).reason
    try:
        cancelled = await runner.cancel(run.run_id, reason)
    except UnknownRun:
        raise HTTPException(404, f"no run with id {run.run_id!r}") from None
    except NotCancellable as exc:
        conflict = {"detail": str(exc), "run": RunPublic.of(exc.run).model_dump(mode="json")}
        return JSONResponse(conflict, status_code=409)
    return RunPublic.of(cancelled)
