"""REST routes of the agent service: runs, their cancellation, the banking demo's balances."""

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from hitl_contracts import TaskSubmitted
from pydantic import BaseModel, ConfigDict, Field

from hitl_agent.adapters.ledger import Ledger
from hitl_agent.domain.run import Limits, Run, RunStatus, Style, Usage
from hitl_agent.service_layer.agents import UnknownAgent
from hitl_agent.service_layer.requests import summary
from hitl_agent.service_layer.runner import InvalidTask, NotCancellable, Runner, UnknownRun

router = APIRouter(tags=["runs"])


class RunCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: str = Field(min_length=1, max_length=20_000, examples=["Transfer 500 to Alice"])
    agent: str = Field(default="banking", examples=["banking", "files"])
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
    task = TaskSubmitted(
        task_id=str(uuid.uuid4()), input=body.input, agent=body.agent, metadata=body.metadata
    )
    try:
        run = await runner.submit(task)
    except (UnknownAgent, InvalidTask) as exc:
        raise HTTPException(422, str(exc)) from None
    # The run is stored (queued): if this publish fails, the relay starts it later.
    await request.app.state.submit_task(task)
    return RunAccepted(run_id=run.run_id, status=run.status)


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


@router.get("/v1/accounts", tags=["banking demo"])
async def accounts(request: Request) -> dict[str, float]:
    """Balances of the banking demo's accounts."""
    ledger: Ledger = request.app.state.ledger
    return await ledger.balances()
