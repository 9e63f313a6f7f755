"""The runs view: every run live, a run's step history, interrupt, halt and resume.

The browser talks to this service only (session cookie, CSRF on every form); this
service calls the agent service with its own delegate token for the signed-in
reviewer (adapters.agent_runs), so no token is ever in a page. What a reviewer may
see or do there is what their own roles in the agent's directory allow.
"""

from collections.abc import AsyncIterator
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from hitl_approval.adapters.agent_runs import AgentRuns, AgentUnavailable, run_history, segment
from hitl_approval.entrypoints.web.render import SECURITY_HEADERS, page
from hitl_approval.entrypoints.web.session import (
    CsrfRejected,
    Session,
    check_csrf,
    require_session,
    session_of,
)

router = APIRouter(prefix="/ui")

SessionDep = Annotated[Session, Depends(require_session)]
STATUSES = ("running", "awaiting_approval", "halted", "queued", "completed", "failed", "cancelled")
LIVE = ("queued", "running", "awaiting_approval", "halted", "unhosted")


def _runs(request: Request) -> AgentRuns:
    runs: AgentRuns = request.app.state.agent_runs
    return runs


RunsDep = Annotated[AgentRuns, Depends(_runs)]


async def _board(
    runs: AgentRuns, session: Session, agent: str | None, status: str | None
) -> dict[str, Any]:
    params: dict[str, Any] = {"limit": 100}
    if agent:
        params["agent"] = agent
    if status in STATUSES:
        params["status"] = status
    error = ""
    page_: dict[str, Any] = {"items": [], "halted_agents": []}
    halts: list[dict[str, Any]] = []
    try:
        page_ = await runs.call("GET", "/v1/runs", reviewer=session.reviewer.name, params=params)
        halts = await runs.call("GET", "/v1/halts", reviewer=session.reviewer.name)
    except AgentUnavailable as exc:
        error = str(exc)
    items = page_["items"]
    agents = sorted(
        {i["agent"] for i in items} | {h["agent"] for h in halts} | {agent or ""} - {""}
    )
    return {
        "error": error,
        "active": [i for i in items if i["status"] in LIVE],
        "ended": [i for i in items if i["status"] not in LIVE],
        "halts": halts,
        "agents": agents,
        "agent": agent or "",
        "status": status or "",
        "statuses": STATUSES,
    }


@router.get("/runs", response_class=HTMLResponse, include_in_schema=False)
async def runs_page(
    request: Request,
    runs: RunsDep,
    session: SessionDep,
    agent: Annotated[str | None, Query(max_length=200)] = None,
    status: Annotated[str | None, Query(max_length=40)] = None,
    partial: Annotated[str | None, Query()] = None,
    done: Annotated[str | None, Query(max_length=300)] = None,
) -> Response:
    context = {"session": session, **await _board(runs, session, agent, status)}
    if partial == "board":
        return page(request, "_board.html", context)
    qs = urlencode({k: v for k, v in (("agent", agent), ("status", status)) if v})
    context.update(qs=qs, flash=done or "")
    return page(request, "runs.html", context)


@router.get("/runs/live", include_in_schema=False)
async def runs_live(
    request: Request,
    runs: RunsDep,
    agent: Annotated[str | None, Query(max_length=200)] = None,
) -> Response:
    """The agent's live stream of every run, relayed for the signed-in reviewer."""
    session = await session_of(request)
    if session is None:
        raise HTTPException(401, "sign in first")
    params = {"agent": agent} if agent else {}

    async def relay() -> AsyncIterator[bytes]:
        try:
            async for chunk in runs.events(reviewer=session.reviewer.name, params=params):
                yield chunk
                if await request.is_disconnected():
                    return
        except AgentUnavailable:
            yield b"retry: 5000\n\n"

    return StreamingResponse(
        relay(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


@router.get("/runs/{run_id}", response_class=HTMLResponse, include_in_schema=False)
async def run_page(
    run_id: str,
    request: Request,
    runs: RunsDep,
    session: SessionDep,
    done: Annotated[str | None, Query(max_length=300)] = None,
    error: Annotated[str | None, Query(max_length=500)] = None,
    partial: Annotated[str | None, Query()] = None,
) -> Response:
    reviewer = session.reviewer.name
    try:
        run = await runs.call("GET", f"/v1/runs/{segment(run_id)}", reviewer=reviewer)
        history = await run_history(runs, run_id, reviewer=reviewer)
        cost = await runs.call("GET", f"/v1/runs/{segment(run_id)}/cost", reviewer=reviewer)
    except AgentUnavailable as exc:
        context = {"session": session, "run_id": run_id, "error": str(exc)}
        return page(request, "run.html", context, status_code=exc.status_code)
    context = {
        "session": session,
        "run": run,
        "run_id": run_id,
        "history": history,
        "cost": cost,
        "flash": done or "",
        "error": error or "",
        "live": run["status"] in LIVE,
    }
    if partial == "body":
        return page(request, "_run_body.html", context)
    return page(request, "run.html", context)


async def _form(request: Request, session: Session) -> dict[str, str]:
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    try:
        check_csrf(session.csrf, form.get("csrf"))
    except CsrfRejected:
        raise HTTPException(403, "this form expired or came from another site") from None
    return form


def _back(target: str, **params: str) -> RedirectResponse:
    return RedirectResponse(f"{target}?{urlencode(params)}", 303, headers=SECURITY_HEADERS)


@router.post("/runs/{run_id}/interrupt", include_in_schema=False)
async def interrupt(run_id: str, request: Request, runs: RunsDep, session: SessionDep) -> Response:
    form = await _form(request, session)
    reason = form.get("reason", "").strip() or "interrupted from the reviewer page"
    target = f"/ui/runs/{segment(run_id)}"
    try:
        await runs.call(
            "POST",
            f"/v1/runs/{segment(run_id)}/interrupt",
            reviewer=session.reviewer.name,
            body={"reason": reason[:2000]},
        )
    except AgentUnavailable as exc:
        return _back(target, error=f"Not interrupted: {exc}")
    return _back(target, done="Interrupt requested: the run pauses at its next step.")


@router.post("/agents/{name}/halt", include_in_schema=False)
async def halt(name: str, request: Request, runs: RunsDep, session: SessionDep) -> Response:
    form = await _form(request, session)
    reason = form.get("reason", "").strip() or "emergency stop from the reviewer page"
    try:
        await runs.call(
            "POST",
            f"/v1/agents/{segment(name)}/halt",
            reviewer=session.reviewer.name,
            body={"reason": reason[:2000]},
        )
    except AgentUnavailable as exc:
        return _back("/ui/runs", done=f"Not halted: {exc}")
    return _back("/ui/runs", done=f"Agent {name} halted: its runs pause at their next step.")


@router.post("/agents/{name}/resume", include_in_schema=False)
async def resume(name: str, request: Request, runs: RunsDep, session: SessionDep) -> Response:
    await _form(request, session)
    try:
        result = await runs.call(
            "POST", f"/v1/agents/{segment(name)}/resume", reviewer=session.reviewer.name, body={}
        )
    except AgentUnavailable as exc:
        return _back("/ui/runs", done=f"Not resumed: {exc}")
    count = len(result.get("resumed_runs", []))
    return _back("/ui/runs", done=f"Agent {name} resumed; {count} parked run(s) going on.")
