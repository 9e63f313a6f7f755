"""The queue and detail pages, the decision form and their live streams.

Thin: read the query or form, call the service layer (decisions go through
`ApprovalService.decide` with channel=web, like every other channel), render.
"""

from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from hitl_contracts import Channel

from hitl_approval.domain.errors import NotFound
from hitl_approval.domain.history import HistoryEvent
from hitl_approval.domain.model import (
    AlreadyDecided,
    Approval,
    ApprovalError,
    InvalidDecision,
    Verb,
)
from hitl_approval.domain.reviewer import Role
from hitl_approval.entrypoints.refusals import Refusal, refusal
from hitl_approval.entrypoints.web import analytics, forms, live
from hitl_approval.entrypoints.web.present import summary
from hitl_approval.entrypoints.web.queue import QueueItem
from hitl_approval.entrypoints.web.render import SECURITY_HEADERS, page
from hitl_approval.entrypoints.web.session import (
    CsrfRejected,
    Session,
    check_csrf,
    require_session,
    session_of,
)
from hitl_approval.service_layer.services import ApprovalService, DecideCommand
from hitl_approval.views import RISKS, STATUSES, QueueQuery, Views

router = APIRouter(prefix="/ui")

SessionDep = Annotated[Session, Depends(require_session)]
ChoiceParam = Annotated[str | None, Query()]


def _service(request: Request) -> ApprovalService:
    service: ApprovalService = request.app.state.service
    return service


ServiceDep = Annotated[ApprovalService, Depends(_service)]


def _views(request: Request) -> Views:
    views: Views = request.app.state.views
    return views


ViewsDep = Annotated[Views, Depends(_views)]


def _query(status: str | None, agent: str | None, risk: str | None, sort: str | None) -> QueueQuery:
    """Unknown filter values fall back to the defaults rather than failing the page."""
    return QueueQuery(
        status=None if status == "all" else (status if status in STATUSES else "pending"),
        agent=agent or None,
        risk=risk if risk in RISKS else None,
        sort="urgent" if sort == "urgent" else "newest",
    )


def _query_string(query: QueueQuery) -> str:
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
    views: ViewsDep,
    session: SessionDep,
    status: ChoiceParam = None,
    agent: ChoiceParam = None,
    risk: ChoiceParam = None,
    sort: ChoiceParam = None,
    partial: ChoiceParam = None,
    done: ChoiceParam = None,
) -> Response:
    query = _query(status, agent, risk, sort)
    items = [QueueItem.of(row) for row in await views.queue(query)]
    context: dict[str, Any] = {"session": session, "items": items, "query": query}
    context["waits"] = await analytics.waits_for(request, items)
    if partial == "rows":
        response = page(request, "_rows.html", context)
        response.headers["X-Queue-Count"] = str(len(items))
        return response
    context.update(
        agents=await views.agents(),
        statuses=STATUSES,
        risks=RISKS,
        qs=_query_string(query),
        signature=await views.queue_signature(query),
        flash=await _flash(service, done),
    )
    return page(request, "queue.html", context)


@router.get("/events", include_in_schema=False)
async def queue_events(
    request: Request,
    views: ViewsDep,
    status: ChoiceParam = None,
    agent: ChoiceParam = None,
    risk: ChoiceParam = None,
    sort: ChoiceParam = None,
    since: ChoiceParam = None,
) -> Response:
    if await session_of(request) is None:
        raise HTTPException(401, "sign in first")
    since = request.headers.get("last-event-id") or since or ""
    stream = live.queue_events(request, views, _query(status, agent, risk, sort), since)
    return _sse(stream)


def _sse(stream: Any) -> StreamingResponse:
    return StreamingResponse(
        stream,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def _note(event: HistoryEvent) -> str:
    detail = event.detail
    if "recipient" not in detail:
        return str(detail.get("comment", "") or "")
    text = f"{detail.get('kind', '')} to {detail['recipient']}"
    if detail.get("error"):
        text += f" after {detail.get('attempts', 1)} attempt(s): {detail['error']}"
    return text


def _history(events: list[HistoryEvent]) -> list[dict[str, Any]]:
    return [
        {"what": e.type, "at": e.at, "actor": e.actor, "channel": e.channel, "comment": _note(e)}
        for e in events
    ]


@dataclass(frozen=True)
class Retry:
    """How to show the detail page again after a decision was not recorded."""

    error: str = ""
    status_code: int = 200
    comment: str = ""
    fields: list[forms.FormField] | None = None
    conflict: str = ""


async def _detail(
    request: Request,
    service: ServiceDep,
    session: Session,
    approval: Approval,
    retry: Retry = Retry(),
) -> HTMLResponse:
    req = approval.request
    extra = {
        k: v
        for k, v in req.context.model_dump().items()
        if k not in ("user_request", "agent_reasoning")
    }
    fields = retry.fields
    if fields is None:
        fields = forms.fields_for(req.arguments_schema, approval.proposal)
    context = {
        "session": session,
        "approval": approval,
        "req": req,
        "decided": approval.decision,
        "extra_context": extra,
        "fields": fields,
        "retry": retry,
        "history": _history(await service.history(approval.correlation_id)),
        "can_decide": session.reviewer.can(Role.REVIEWER),
        "expected_wait": await analytics.wait_for(request, approval),
    }
    return page(request, "detail.html", context, status_code=retry.status_code)


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
        history = _history(await service.history(correlation_id))
        return page(request, "_history.html", {"history": history})
    return await _detail(request, service, session, approval)


@router.get("/approvals/{correlation_id}/events", include_in_schema=False)
async def detail_events(
    correlation_id: str,
    request: Request,
    service: ServiceDep,
    since: Annotated[int, Query()] = 0,
) -> Response:
    if await session_of(request) is None:
        raise HTTPException(401, "sign in first")
    last = request.headers.get("last-event-id", "")
    start = int(last) if last.isdigit() else since
    return _sse(live.approval_events(request, service, correlation_id, start))


def _command(session: Session, approval: Approval, form: dict[str, str]) -> DecideCommand | Retry:
    """The decision the form asks for, or why it cannot be taken as submitted."""
    comment = form.get("comment", "").strip()
    try:
        check_csrf(session.csrf, form.get("csrf"))
    except CsrfRejected:
        return Retry(
            "This form expired or came from another site, so nothing was recorded. "
            "Review the approval below and decide again.",
            403,
            comment,
        )
    if not session.reviewer.can(Role.REVIEWER):
        return Retry(f"Reviewer {session.reviewer.name!r} may view approvals but not decide.", 403)
    action = form.get("action", "")
    if action not in {v.value for v in Verb}:
        return Retry("Choose approve, approve with changes, or reject.", 422, comment)
    arguments = None
    if action == Verb.MODIFY:
        parsed = forms.parse(approval.request.arguments_schema, approval.proposal, form)
        if parsed.errors:
            message = "Some arguments need fixing; nothing was recorded."
            return Retry(message, 422, comment, parsed.fields)
        arguments = parsed.arguments
    return DecideCommand(
        correlation_id=approval.correlation_id,
        verb=Verb(action),
        reviewer=session.reviewer.name,
        channel=Channel.WEB,
        arguments=arguments,
        comment=comment,
    )


def _retry(
    error: ApprovalError, refused: Refusal, approval: Approval, form: dict[str, str]
) -> Retry:
    """The detail page again, saying why; the form keeps what was typed."""
    comment = form.get("comment", "").strip()
    if isinstance(error, AlreadyDecided):
        # The page shows who decided first; the form is gone.
        return Retry(status_code=refused.status, conflict=form.get("action", ""))
    if refused.current is not None:  # e.g. this reviewer already voted under a quorum
        return Retry(f"{refused.detail}.", refused.status)
    if isinstance(error, InvalidDecision):
        fields = None  # a rejection's form shows the proposal again, unedited
        if form.get("action") == Verb.MODIFY:
            fields = forms.parse(approval.request.arguments_schema, approval.proposal, form).fields
        return Retry(f"Not recorded: {refused.detail}.", refused.status, comment, fields)
    return Retry(f"{refused.detail}.", refused.status, comment)


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
    command = _command(session, approval, form)
    if isinstance(command, Retry):
        return await _detail(request, service, session, approval, command)
    try:
        await service.decide(command)
    except ApprovalError as exc:
        refused = refusal(exc)
        return await _detail(
            request,
            service,
            session,
            refused.current or approval,
            _retry(exc, refused, approval, form),
        )
    target = f"/ui?{urlencode({'done': correlation_id})}"
    return RedirectResponse(target, 303, headers=SECURITY_HEADERS)
