"""REST routes of the agent service."""

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request
from hitl_shared.contracts import TaskSubmitted
from pydantic import BaseModel, ConfigDict, Field

from hitl_agent.adapters.ledger import Ledger
from hitl_agent.domain.run import Run, RunStatus, Usage
from hitl_agent.service_layer.runner import Runner, UnknownAgent

router = APIRouter(tags=["runs"])


class RunCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: str = Field(min_length=1, max_length=20_000, examples=["Transfer 500 to Alice"])
    agent: str = Field(default="banking", examples=["banking"])
    metadata: dict[str, Any] = Field(default_factory=dict)


class RunAccepted(BaseModel):
    run_id: str
    status: RunStatus


class PendingApproval(BaseModel):
    correlation_id: str
    tool: str
    arguments: dict[str, Any]
    reason: str
    expires_at: str


class RunPublic(BaseModel):
    run_id: str
    agent: str
    input: str
    status: RunStatus
    pending_approvals: list[PendingApproval]
    output: str | None
    error: str | None
    steps: int
    usage: Usage
    messages: list[dict[str, Any]]

    @classmethod
    def of(cls, run: Run) -> "RunPublic":
        return cls(
            run_id=run.run_id,
            agent=run.agent,
            input=run.input,
            status=run.status,
            pending_approvals=[
                PendingApproval(
                    correlation_id=p.correlation_id,
                    tool=p.tool,
                    arguments=p.arguments,
                    reason=p.reason,
                    expires_at=p.expires_at.isoformat(),
                )
                for p in run.open_calls()
            ],
            output=run.output,
            error=run.error,
            steps=run.steps,
            usage=run.usage,
            messages=run.messages,
        )


def get_runner(request: Request) -> Runner:
    runner: Runner = request.app.state.runner
    return runner


RunnerDep = Annotated[Runner, Depends(get_runner)]


@router.post("/v1/runs", status_code=202, response_model=RunAccepted)
async def create_run(body: RunCreate, runner: RunnerDep, request: Request) -> RunAccepted:
    task = TaskSubmitted(
        task_id=str(uuid.uuid4()), input=body.input, agent=body.agent, metadata=body.metadata
    )
    try:
        run = await runner.submit(task)
    except UnknownAgent as exc:
        raise HTTPException(422, str(exc)) from None
    await request.app.state.submit_task(task)
    return RunAccepted(run_id=run.run_id, status=run.status)


@router.get(
    "/v1/runs/{run_id}", response_model=RunPublic, responses={404: {"description": "No such run"}}
)
async def get_run(run_id: str, runner: RunnerDep) -> RunPublic:
    run = await runner.runs.get(run_id)
    if run is None:
        raise HTTPException(404, f"no run with id {run_id!r}")
    return RunPublic.of(run)


@router.get("/v1/accounts", tags=["banking demo"])
async def accounts(request: Request) -> dict[str, float]:
    """Balances of the banking demo's accounts."""
    ledger: Ledger = request.app.state.ledger
    return await ledger.balances()
