"""REST routes of the agent service: runs and their cancellation (apps may add routes).

Every route needs a bearer token (hitl_shared.directory). A run belongs to the principal
that submitted it: they read and cancel it; `read`, `operate` and `reviewer` principals
read every run, `operate` cancels any. Anyone else gets 404 for a run that exists, as
for one that does not, so run ids cannot be probed.
"""

import asyncio
import hashlib
import logging
import uuid
from collections.abc import Awaitable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Header, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from hitl_contracts import TaskSubmitted
from hitl_contracts.identity import same_identity
from hitl_contracts.plain import PlainObject
from hitl_contracts.signing import canonical_json
from hitl_shared.directory import Principal, Role
from hitl_shared.http_auth import CurrentPrincipal, require_any
from pydantic import BaseModel, ConfigDict, Field

from hitl_agent.adapters.workers import WorkerRegistry
from hitl_agent.domain.run import Limits, Run, RunStatus, Style, Usage
from hitl_agent.service_layer.agents import UnknownAgent
from hitl_agent.service_layer.requests import summary
from hitl_agent.service_layer.runner import InvalidTask, NotCancellable, Runner, UnknownRun
from hitl_agent.views import RunViews

log = logging.getLogger(__name__)
router = APIRouter(tags=["runs"])
T = TypeVar("T")

# Idempotency keys name one run per caller: a retry with the same key gets that run.
IDEMPOTENCY_NAMESPACE = uuid.UUID("6f1c0a52-3f7e-4d8e-9a51-0c1d2e3f4a5b")
# How long a request waits for the store, and for the broker after the run is stored,
# before answering (503, or 202 with the relay starting the run later).
STORE_DEADLINE_SECONDS = 1.5
PUBLISH_DEADLINE_SECONDS = 1.0


async def bounded(step: Awaitable[T]) -> T:
    """The store's answer within the deadline, else TimeoutError (JSON 503 + Retry-After)."""
    return await asyncio.wait_for(step, STORE_DEADLINE_SECONDS)


class RunCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    input: str = Field(min_length=1, max_length=20_000, examples=["Transfer 500 to Alice"])
    agent: str = Field(
        default="",
        description="The agent to run: any agent a worker of this deployment hosts. "
        "Empty: the deployment's AGENT_DEFAULT_AGENT.",
        examples=["banking", "invoices"],
    )
    metadata: PlainObject = Field(
        default_factory=dict,
        description="Free-form, for the caller's own bookkeeping. Who submitted the run is "
        "the authenticated caller (the approval's requested_by), never a metadata field.",
        examples=[{"ticket": "OPS-12"}],
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
    submitted_by: str = Field(description="The authenticated principal that submitted it.")
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
            submitted_by=run.submitted_by,
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


async def get_runner(request: Request) -> Runner:
    runner: Runner = request.app.state.runner
    return runner


RunnerDep = Annotated[Runner, Depends(get_runner)]


async def get_views(request: Request) -> RunViews:
    views: RunViews = request.app.state.views
    return views


ViewsDep = Annotated[RunViews, Depends(get_views)]


# Roles that read every run (admin holds every role).
READ_ALL = (Role.READ, Role.OPERATE, Role.REVIEWER)


def owns(principal: Principal, run: Run) -> bool:
    return bool(run.submitted_by) and same_identity(principal.name, run.submitted_by)


def may_read(principal: Principal, run: Run) -> bool:
    return owns(principal, run) or any(principal.can(role) for role in READ_ALL)


def may_cancel(principal: Principal, run: Run) -> bool:
    return principal.can(Role.OPERATE) or (owns(principal, run) and principal.can(Role.SUBMIT))


async def visible_run(run_id: str, views: ViewsDep, principal: CurrentPrincipal) -> Run:
    run = await bounded(views.run(run_id))
    if run is None or not may_read(principal, run):
        raise HTTPException(404, f"no run with id {run_id!r}")
    return run


RunDep = Annotated[Run, Depends(visible_run)]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    401: {"description": "No token, or an unknown one"},
    404: {"description": "No such run (or not one this caller may see)"},
}


@router.post(
    "/v1/runs",
    status_code=202,
    response_model=RunAccepted,
    responses={
        200: {"description": "A retry with the same Idempotency-Key: the run it started"},
        401: {"description": "No token, or an unknown one"},
        403: {"description": "The caller lacks the submit role"},
        409: {"description": "This Idempotency-Key was used for a different request"},
        413: {"description": "Body over 1 MiB"},
        422: {"description": "Unknown agent or bad body"},
        503: {"description": "The store is unavailable; retry (with the same Idempotency-Key)"},
    },
)
async def create_run(
    body: RunCreate,
    runner: RunnerDep,
    request: Request,
    response: Response,
    principal: Annotated[Principal, require_any(Role.SUBMIT)],
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=200,
            pattern=r"^[\x21-\x7e]+$",
            description="Retrying with the same key returns the same run instead of a second.",
        ),
    ] = None,
) -> RunAccepted:
    """Start a run as the authenticated caller (its `submitted_by`).

    202: stored and started (or, with the broker away, started by the relay shortly).
    Its status is `queued`, or `unhosted` when no live worker hosts the agent (yet):
    it starts when one does.
    An error status means no run was created, except 503, after which the run may exist:
    retry with the same Idempotency-Key to get it rather than a second one.
    """
    agent = body.agent or request.app.state.settings.agent_default_agent
    if not agent:
        raise HTTPException(422, "name the agent to run (this deployment has no default agent)")
    digest = hashlib.sha256(
        canonical_json({"input": body.input, "agent": agent, "metadata": body.metadata})
    ).hexdigest()
    task_id = (
        str(uuid.uuid5(IDEMPOTENCY_NAMESPACE, f"{principal.key}\n{idempotency_key}"))
        if idempotency_key
        else str(uuid.uuid4())
    )
    task = TaskSubmitted(
        task_id=task_id,
        input=body.input,
        agent=agent,
        metadata=body.metadata,
        submitted_by=principal.name,
    )
    announced = False

    async def announce() -> None:
        nonlocal announced
        announced = True
        await _submit(request, task)

    try:
        if runner.hosts(agent):
            run, created = await bounded(runner.accept(task, digest=digest, announce=announce))
        else:
            run, created = await bounded(_hold(task, runner, request, digest))
    except (UnknownAgent, InvalidTask) as exc:
        raise HTTPException(422, str(exc)) from None
    if not created:
        if run.request_digest != digest or not owns(principal, run):
            raise HTTPException(
                409, "this Idempotency-Key was already used for a different request"
            )
        response.status_code = 200
        if run.status is not RunStatus.QUEUED:
            return RunAccepted(run_id=run.run_id, status=run.status)
    if not announced:
        await _submit(request, task)
    return RunAccepted(run_id=run.run_id, status=run.status)


async def _submit(request: Request, task: TaskSubmitted) -> None:
    """Publish a stored (queued) run's task; if that fails, the relay starts it later."""
    try:
        await asyncio.wait_for(request.app.state.submit_task(task), PUBLISH_DEADLINE_SECONDS)
    except Exception as exc:
        log.warning(
            "run stored, task not published (%r); the relay starts it",
            exc,
            extra={"run_id": task.task_id},
        )


async def _hold(
    task: TaskSubmitted, runner: Runner, request: Request, digest: str
) -> tuple[Run, bool]:
    """A task for an agent another worker hosts, or one no live worker hosts right now."""
    workers: WorkerRegistry = request.app.state.workers
    live, known = await workers.agents()
    if task.agent not in live | known:
        hosted = sorted(live | set(runner.agents))
        raise UnknownAgent(f"unknown agent {task.agent!r}; hosted: {hosted}")
    run, stored = await runner.hold(task, hosted_elsewhere=task.agent in live, digest=digest)
    if stored and run.status is RunStatus.UNHOSTED:
        request.app.state.on_unhosted(task.agent)
    return run, stored


@router.get("/v1/runs/{run_id}", response_model=RunPublic, responses=NOT_FOUND)
async def get_run(run: RunDep) -> RunPublic:
    return RunPublic.of(run)


@router.post(
    "/v1/runs/{run_id}/cancel",
    response_model=RunPublic,
    responses={
        **NOT_FOUND,
        403: {"description": "Neither the run's submitter nor an operator"},
        409: {"description": "The run already ended; `run` is its state"},
    },
)
async def cancel_run(
    run: RunDep, runner: RunnerDep, principal: CurrentPrincipal, body: RunCancel | None = None
) -> RunPublic | JSONResponse:
    """Cancel a run that has not ended; its pending approvals become `cancelled`.

    For the run's submitter and for operators; the history names who cancelled.
    """
    if not may_cancel(principal, run):
        raise HTTPException(
            403, f"{principal.name!r} may not cancel this run: only its submitter or an operator"
        )
    reason = (body or RunCancel()).reason
    try:
        cancelled = await bounded(runner.cancel(run.run_id, reason, by=principal.name))
    except UnknownRun:
        raise HTTPException(404, f"no run with id {run.run_id!r}") from None
    except NotCancellable as exc:
        conflict = {"detail": str(exc), "run": RunPublic.of(exc.run).model_dump(mode="json")}
        return JSONResponse(conflict, status_code=409)
    return RunPublic.of(cancelled)
