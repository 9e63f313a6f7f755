"""Oversight routes: interrupt a run, halt and resume an agent, see halts and their audit.

Who acts is the authenticated principal. A `delegate` (the reviewer web page, which
holds its own token) may act for a person it names in `On-Behalf-Of`: that person
must be in this service's directory, and their roles (not the delegate's) decide.
"""

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from hitl_shared.directory import Directory, Principal, Role
from hitl_shared.http_auth import CurrentPrincipal
from pydantic import BaseModel, ConfigDict, Field

from hitl_agent.adapters.workers import WorkerRegistry
from hitl_agent.domain.oversight import AuditEntry, Halt, Interrupt
from hitl_agent.domain.run import Run
from hitl_agent.entrypoints.api import (
    NOT_FOUND,
    RunnerDep,
    RunPublic,
    ViewsDep,
    bounded,
    may_cancel,
    may_read,
)
from hitl_agent.service_layer.oversight import Oversight, RunEnded

router = APIRouter(tags=["oversight"])


def acting(
    request: Request,
    principal: CurrentPrincipal,
    on_behalf_of: Annotated[
        str | None,
        Header(
            max_length=200,
            description="Only for `delegate` principals (the reviewer web page): the "
            "person they act for, whose own roles apply.",
        ),
    ] = None,
) -> Principal:
    if on_behalf_of is None:
        return principal
    if not principal.can(Role.DELEGATE):
        raise HTTPException(403, f"{principal.name!r} may not act on behalf of others")
    directory: Directory = request.app.state.directory
    person = directory.named(on_behalf_of)
    if person is None:
        raise HTTPException(403, f"{on_behalf_of!r} is not a principal of the agent service")
    # A delegate never passes on its own power (nor gets to delegate again).
    return Principal(person.name, person.roles - {Role.DELEGATE}, person.groups)


Actor = Annotated[Principal, Depends(acting)]


def get_oversight(request: Request) -> Oversight:
    oversight: Oversight = request.app.state.oversight
    return oversight


OversightDep = Annotated[Oversight, Depends(get_oversight)]


async def run_for(run_id: str, views: ViewsDep, actor: Actor) -> Run:
    run = await bounded(views.run(run_id))
    if run is None or not may_read(actor, run):
        raise HTTPException(404, f"no run with id {run_id!r}")
    return run


ActorRun = Annotated[Run, Depends(run_for)]


class InterruptBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=2_000, examples=["it keeps retrying"])


class InterruptPublic(BaseModel):
    run_id: str
    state: str = Field(
        description="requested (pauses at the next step boundary), paused (a `supervisor` "
        "approval waits: its correlation_id), ended (the run ended before a boundary)."
    )
    reason: str
    by: str
    requested_at: datetime
    correlation_id: str | None
    run_status: str | None

    @classmethod
    def of(cls, flag: Interrupt) -> "InterruptPublic":
        return cls(
            run_id=flag.run_id,
            state=flag.state.value,
            reason=flag.reason,
            by=flag.by,
            requested_at=flag.requested_at,
            correlation_id=flag.correlation_id,
            run_status=flag.run_status,
        )


@router.post(
    "/v1/runs/{run_id}/interrupt",
    status_code=202,
    response_model=InterruptPublic,
    responses={
        **NOT_FOUND,
        200: {"description": "An interrupt of this run is already pending: that one"},
        403: {"description": "Neither the run's submitter nor an operator"},
        409: {"description": "The run already ended; `run` is its state"},
    },
)
async def interrupt_run(
    run: ActorRun,
    body: InterruptBody,
    actor: Actor,
    oversight: OversightDep,
    response: Response,
) -> InterruptPublic | JSONResponse:
    """Pause the run at its next step boundary with a `supervisor` approval.

    A reviewer then lets it go on (approve), goes on with a note to the model
    (approve with a comment) or stops it (reject). Any replica may take the request:
    the flag is stored, and the worker driving the run checks it before each step.
    """
    if not may_cancel(actor, run):
        raise HTTPException(
            403, f"{actor.name!r} may not interrupt this run: only its submitter or an operator"
        )
    try:
        flag, stored = await bounded(oversight.interrupt(run, reason=body.reason, by=actor.name))
    except RunEnded as exc:
        conflict = {"detail": str(exc), "run": RunPublic.of(exc.run).model_dump(mode="json")}
        return JSONResponse(conflict, status_code=409)
    if not stored:
        response.status_code = 200
    return InterruptPublic.of(flag)


@router.get(
    "/v1/runs/{run_id}/interrupt",
    response_model=InterruptPublic,
    responses={404: {"description": "No such run, or never interrupted"}},
)
async def interrupt_state(run: ActorRun, oversight: OversightDep) -> InterruptPublic:
    """What became of the run's latest interrupt."""
    flag = await bounded(oversight.interrupt_of(run))
    if flag is None:
        raise HTTPException(404, f"run {run.run_id!r} was never interrupted")
    return InterruptPublic.of(flag)


class HaltBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=2_000, examples=["retry loop on the ledger"])


class ResumeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=2_000)


class HaltPublic(BaseModel):
    agent: str
    halted: bool
    reason: str = ""
    by: str = ""
    at: datetime | None = None

    @classmethod
    def of(cls, agent: str, halt: Halt | None) -> "HaltPublic":
        if halt is None:
            return cls(agent=agent, halted=False)
        return cls(agent=agent, halted=True, reason=halt.reason, by=halt.by, at=halt.at)


class ResumePublic(BaseModel):
    agent: str
    halted: bool = False
    resumed_runs: list[str] = Field(description="Runs the halt had parked, now going on.")


async def known_agent(name: str, request: Request) -> str:
    runner = request.app.state.runner
    workers: WorkerRegistry = request.app.state.workers
    live, known = await bounded(workers.agents())
    if name not in live | known | set(runner.agents):
        raise HTTPException(404, f"no agent named {name!r}")
    return name


AgentName = Annotated[str, Depends(known_agent)]


@router.post(
    "/v1/agents/{name}/halt",
    status_code=202,
    response_model=HaltPublic,
    responses={
        200: {"description": "Already halted: the halt in force"},
        403: {"description": "Not an operator"},
        404: {"description": "No such agent"},
    },
)
async def halt_agent(
    name: AgentName, body: HaltBody, actor: Actor, oversight: OversightDep, response: Response
) -> HaltPublic:
    """Emergency stop: no run of the agent takes another step until an admin resumes it.

    Each running run pauses (`halted`) at its next step boundary, on every worker;
    new tasks are accepted and wait the same way. Audited.
    """
    if not actor.can(Role.OPERATE):
        raise HTTPException(403, f"{actor.name!r} may not halt agents: operators only")
    halt, stored = await bounded(oversight.halt(name, reason=body.reason, by=actor.name))
    if not stored:
        response.status_code = 200
    return HaltPublic.of(name, halt)


@router.post(
    "/v1/agents/{name}/resume",
    response_model=ResumePublic,
    responses={403: {"description": "Not an admin"}, 404: {"description": "No such agent"}},
)
async def resume_agent(
    name: AgentName,
    actor: Actor,
    oversight: OversightDep,
    runner: RunnerDep,
    request: Request,
    body: ResumeBody | None = None,
) -> ResumePublic:
    """Lift the halt (admins only) and set every run it parked going again. Audited."""
    if Role.ADMIN not in actor.roles:
        raise HTTPException(403, f"{actor.name!r} may not resume agents: admins only")
    resumed = await oversight.resume(
        name, by=actor.name, runner=runner, wake=request.app.state.submit_task
    )
    return ResumePublic(agent=name, resumed_runs=resumed)


@router.get("/v1/agents/{name}/halt", response_model=HaltPublic)
async def halt_state(name: AgentName, actor: Actor, views: ViewsDep) -> HaltPublic:
    """Whether the agent is halted, by whom and why."""
    return HaltPublic.of(name, await bounded(views.halt(name)))


@router.get("/v1/halts", response_model=list[HaltPublic])
async def halts(actor: Actor, views: ViewsDep) -> list[HaltPublic]:
    """Every agent halted right now."""
    return [HaltPublic.of(h.agent, h) for h in await bounded(views.halts())]


@router.get("/v1/agents/{name}/audit", response_model=list[dict[str, Any]])
async def audit(name: AgentName, actor: Actor, views: ViewsDep) -> list[dict[str, Any]]:
    """Halts, resumes and interrupts of the agent's runs, newest first (operators)."""
    if not (actor.can(Role.OPERATE) or actor.can(Role.READ)):
        raise HTTPException(403, f"{actor.name!r} may not read the audit: read or operate role")
    entries: list[AuditEntry] = await bounded(views.audit_of(name))
    return [e.model_dump(mode="json") for e in entries]
