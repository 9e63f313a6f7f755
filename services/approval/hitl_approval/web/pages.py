"""The queue and detail pages, the decision form and their live streams.

Thin: read the query or form, call the service layer (decisions go through
`ApprovalService.decide` with channel=web, like every other channel), render.
"""

from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from hitl_shared.contracts import Channel

from hitl_approval.domain.model import AlreadyDecided, Approval, ApprovalError, Verb
from hitl_approval.service_layer.services import ApprovalService, DecideCommand, NotFound
from hitl_approval.web import forms, live, queue
from hitl_approval.web.present import summary
from hitl_approval.web.render import SECURITY_HEADERS, page
from hitl_approval.web.session import CsrfRejected, Session, check_csrf, require_session, session_of

router = APIRouter(prefix="/ui")

SessionDep = Annotated[Session, Depends(require_session)]
ChoiceParam = Annotated[str | None, Query()]


def _service(request: Request) -> ApprovalService:
    service: ApprovalService = request.app.state.service
    return service


ServiceDep = Annotated[ApprovalService, Depends(_service)]


def _query(
    status: str | None, agent: str | None, risk: str | None, sort: str | None
) -> queue.QueueQuery:
    """Unknown filter values fall back to the defaults rather than failing the page."""
    return queue.QueueQuery(
        status=None if status == "all" else (status if status in queue.STATUSES else "pending"),
        agent=agent or None,
        risk=risk if risk in queue.RISKS else None,
        sort="urgent" if sort == "urgent" else "newest",
    )


def _query_string(query: queue.QueueQuery) -> str:
    params = {
        "status": query.status or "all",
        "agent": query.agent or "",
        "risk": query.risk or "",
        "sort": query.sort,
    }
    return urlencode({k: v for k, v in params.items() if v})


async def _flash(service: ApprovalService, done: str | None) -> str:
    if not done:
        return ""
    try:
        approval = await service.get(done)
    except NotFound:
        return ""
    decided = approval.decision
    if decided is None:
        return (
            f"Recorded your review of {approval.request.tool}; it still waits for more reviewers."
        )
    args = f" ({summary(decided.arguments)})" if decided.arguments else ""
    return f"{decided.decision.value.capitalize()}: {approval.request.tool}{args}, by {decided.reviewer}."


@router.get("", response_class=HTMLResponse, include_in_schema=False)
async def queue_page(
    request: Request,
    service: ServiceDep,
    session: SessionDep,
    status: ChoiceParam = None,
    agent: ChoiceParam = None,
    risk: ChoiceParam = None,
    sort: ChoiceParam = None,
    partial: ChoiceParam = None,
    done: ChoiceParam = None,
) -> Response:
    query = _query(status, agent, risk, sort)
    items = await queue.load(service.repo, query)
    context: dict[str, Any] = {"session": session, "items": items, "query": query}
    if partial == "rows":
        response = page(request, "_rows.html", context)
        response.headers["X-Queue-Count"] = str(len(items))
        return response
    context.update(
        agents=await queue.agents(service.repo),
        statuses=queue.STATUSES,
        risks=queue.RISKS,
        qs=_query_string(query),
        signature=await queue.signature(service.repo, query),
        flash=await _flash(service, done),
    )
    return page(request, "queue.html", context)


@router.get("/events", include_in_schema=False)
async def queue_events(
    request: Request,
    service: ServiceDep,
    status: ChoiceParam = None,
    agent: ChoiceParam = None,
    risk: ChoiceParam = None,
    sort: ChoiceParam = None,
    since: ChoiceParam = None,
) -> Response:
    if session_of(request) is None:
        raise HTTPException(401, "sign in first")
    since = request.headers.get("last-event-id") or since or ""
    stream = live.queue_events(request, service, _query(status, agent, risk, sort), since)
    return _sse(stream)


def _sse(stream: Any) -> StreamingResponse:
    return StreamingResponse(
        stream,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _history(approval: Approval) -> list[dict[str, Any]]:
    items = []
    for entry in approval.entries:
        what = entry.type.value
        if what == "decided":
            what = str(entry.data.get("decision", what))
        items.append(
            {
                "what": what,
                "at": entry.at,
                "actor": entry.actor,
                "channel": entry.channel.value,
                "comment": str(entry.data.get("comment", "") or ""),
            }
        )
    return items


def _detail(
    request: Request,
    session: Session,
    approval: Approval,
    *,
    fields: list[forms.FormField] | None = None,
    comment: str = "",
    error: str = "",
    conflict: str = "",
    status_code: int = 200,
) -> HTMLResponse:
    req = approval.request
    extra = {
        k: v
        for k, v in req.context.model_dump().items()
        if k not in ("user_request", "agent_reasoning")
    }
    context = {
        "session": session,
        "approval": approval,
        "req": req,
        "decided": approval.decision,
        "extra_context": extra,
        "fields": fields
        if fields is not None
        else forms.fields_for(req.arguments_schema, req.arguments),
        "comment": comment,
        "error": error,
        "conflict": conflict,
        "history": _history(approval),
        "can_decide": session.reviewer.can("reviewer"),
    }
    return page(request, "detail.html", context, status_code=status_code)


async def _find(service: ApprovalService, correlation_id: str) -> Approval | None:
    try:
        return await service.get(correlation_id)
    except NotFound:
        return None


def _not_found(request: Request, session: Session, correlation_id: str) -> HTMLResponse:
    context = {"session": session, "correlation_id": correlation_id}
    return page(request, "not_found.html", context, status_code=404)


@router.get("/approvals/{correlation_id}", response_class=HTMLResponse, include_in_schema=False)
async def detail_page(
    correlation_id: str,
    request: Request,
    service: ServiceDep,
    session: SessionDep,
    partial: ChoiceParam = None,
) -> Response:
    approval = await _find(service, correlation_id)
    if approval is None:
        return _not_found(request, session, correlation_id)
    if partial == "history":
        return page(request, "_history.html", {"history": _history(approval)})
    return _detail(request, session, approval)


@router.get("/approvals/{correlation_id}/events", include_in_schema=False)
async def detail_events(
    correlation_id: str,
    request: Request,
    service: ServiceDep,
    since: Annotated[int, Query()] = 0,
) -> Response:
    if session_of(request) is None:
        raise HTTPException(401, "sign in first")
    last = request.headers.get("last-event-id", "")
    start = int(last) if last.isdigit() else since
    return _sse(live.approval_events(request, service, correlation_id, start))


@router.post(
    "/approvals/{correlation_id}/decision", response_class=HTMLResponse, include_in_schema=False
)
async def decide(
    correlation_id: str, request: Request, service: ServiceDep, session: SessionDep
) -> Response:
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    approval = await _find(service, correlation_id)
    if approval is None:
        return _not_found(request, session, correlation_id)
    comment = form.get("comment", "").strip()
    try:
        check_csrf(session.csrf, form.get("csrf"))
    except CsrfRejected:
        return _detail(
            request,
            session,
            approval,
            comment=comment,
            status_code=403,
            error="This form expired or came from another site, so nothing was recorded. "
            "Review the approval below and decide again.",
        )
    if not session.reviewer.can("reviewer"):
        return _detail(
            request,
            session,
            approval,
            status_code=403,
            error=f"Reviewer {session.reviewer.name!r} may view approvals but not decide them.",
        )
    action = form.get("action", "")
    if action not in {v.value for v in Verb}:
        return _detail(
            request,
            session,
            approval,
            comment=comment,
            status_code=422,
            error="Choose approve, approve with changes, or reject.",
        )
    arguments = None
    if action == Verb.MODIFY:
        parsed = forms.parse(approval.request.arguments_schema, approval.request.arguments, form)
        if parsed.errors:
            return _detail(
                request,
                session,
                approval,
                fields=parsed.fields,
                comment=comment,
                status_code=422,
                error="Some arguments need fixing; nothing was recorded.",
            )
        arguments = parsed.arguments
    if action == Verb.REJECT and not comment:
        return _detail(
            request,
            session,
            approval,
            comment=comment,
            status_code=422,
            error="Say why you reject it: the comment goes back to the agent.",
        )
    command = DecideCommand(
        correlation_id=correlation_id,
        verb=Verb(action),
        reviewer=session.reviewer.name,
        channel=Channel.WEB,
        arguments=arguments,
        comment=comment,
    )
    try:
        await service.decide(command)
    except AlreadyDecided as exc:
        return _detail(request, session, exc.approval, status_code=409, conflict=action)
    except ApprovalError as exc:
        # Policy refusals (four-eyes, groups) and invalid arguments: say why, keep the input.
        return _detail(
            request,
            session,
            approval,
            comment=comment,
            status_code=422,
            error=f"Not recorded: {exc}",
        )
    return RedirectResponse(
        f"/ui?{urlencode({'done': correlation_id})}", 303, headers=SECURITY_HEADERS
    )
