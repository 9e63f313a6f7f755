"""REST routes that read approvals: the listing, one approval, its history."""

import logging
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from hitl_contracts import RiskLevel

from hitl_approval.adapters.repository import Filters
from hitl_approval.domain.errors import NotFound
from hitl_approval.domain.model import Status
from hitl_approval.entrypoints.rest import longpoll
from hitl_approval.entrypoints.rest.analytics import with_expected_waits
from hitl_approval.entrypoints.rest.auth import CurrentReviewer
from hitl_approval.entrypoints.rest.errors import BROKEN, INVALID, NOT_FOUND, UNAUTHORIZED
from hitl_approval.entrypoints.rest.schemas import ApprovalPage, ApprovalView, HistoryItem
from hitl_approval.service_layer.services import ApprovalService
from hitl_approval.views import Views

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/approvals", tags=["approvals"])


async def get_service(request: Request) -> ApprovalService:
    service: ApprovalService = request.app.state.service
    return service


ServiceDep = Annotated[ApprovalService, Depends(get_service)]


async def get_views(request: Request) -> Views:
    views: Views = request.app.state.views
    return views


ViewsDep = Annotated[Views, Depends(get_views)]
CorrelationId = Annotated[
    str, Path(min_length=1, max_length=512, description="The approval's correlation id.")
]
Text = Annotated[str | None, Query(min_length=1, max_length=512)]


def etag(version: int) -> str:
    return f'"{version}"'


@router.get(
    "",
    response_model=ApprovalPage,
    responses={**UNAUTHORIZED, **INVALID},
    summary="List approvals, newest first",
)
async def list_approvals(
    views: ViewsDep,
    request: Request,
    _: CurrentReviewer,
    status: Status | None = None,
    agent: Text = None,
    run_id: Text = None,
    tool: Text = None,
    risk_level: RiskLevel | None = None,
    escalated: bool | None = None,
    created_after: Annotated[
        datetime | None, Query(description="requested_at >= this (ISO 8601)")
    ] = None,
    created_before: Annotated[
        datetime | None, Query(description="requested_at < this (ISO 8601)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[
        str | None, Query(max_length=1024, description="`next_cursor` of the previous page.")
    ] = None,
) -> ApprovalPage:
    """Newest first by `requested_at` (ties by correlation id), stable across pages."""
    filters = Filters(
        status=status.value if status else None,
        agent=agent,
        run_id=run_id,
        tool=tool,
        risk_level=risk_level.value if risk_level else None,
        created_after=created_after,
        created_before=created_before,
        escalated=escalated,
    )
    try:
        page = await views.page(filters, limit=limit, cursor=cursor)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    items = [ApprovalView.of(row) for row in page.rows]
    items = await with_expected_waits(request, items)
    return ApprovalPage(items=items, next_cursor=page.next_cursor)


@router.get(
    "/{correlation_id}",
    response_model=ApprovalView,
    responses={
        200: {"headers": {"ETag": {"description": "The version, for If-Match."}}},
        **UNAUTHORIZED,
        **NOT_FOUND,
        **BROKEN,
        **INVALID,
    },
    summary="One approval, read from its stream",
)
async def get_approval(
    correlation_id: CorrelationId,
    service: ServiceDep,
    request: Request,
    response: Response,
    _: CurrentReviewer,
    wait: Annotated[
        str | None,
        Query(
            pattern=longpoll.WAIT_PATTERN,
            description="Long-poll: hold the answer up to this many seconds (`30` or `30s`, "
            "capped by APPROVAL_WAIT_MAX_SECONDS) until the approval is decided or its "
            "version passes `after_version`; on timeout the current (pending) state.",
        ),
    ] = None,
    after_version: Annotated[
        int | None,
        Query(ge=0, le=2**31, description="With `wait`: the version you already have."),
    ] = None,
) -> ApprovalView:
    try:
        if wait is None:
            approval = await service.get(correlation_id)
        else:
            approval = await longpoll.current(request, correlation_id)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    if wait is not None:
        approval = await longpoll.until_changed(
            request, approval, wait=longpoll.seconds_of(wait), after_version=after_version
        )
    response.headers["ETag"] = etag(approval.version)
    return (await with_expected_waits(request, [ApprovalView.of(approval)]))[0]


@router.get(
    "/{correlation_id}/history",
    response_model=list[HistoryItem],
    responses={**UNAUTHORIZED, **NOT_FOUND, **BROKEN, **INVALID},
    summary="Audit trail: who did what, when, through which channel",
)
async def history(
    correlation_id: CorrelationId, service: ServiceDep, _: CurrentReviewer
) -> list[HistoryItem]:
    """The request, votes, escalation and decision, merged with every notification."""
    try:
        events = await service.history(correlation_id)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    return [HistoryItem.of(event) for event in events]
