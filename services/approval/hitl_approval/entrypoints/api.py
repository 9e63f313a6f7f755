"""REST routes of the approval service: validate, build a command, call the service."""

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response
from fastapi.responses import JSONResponse
from hitl_shared.contracts import Channel, RiskLevel

from hitl_approval.adapters.repository import Filters
from hitl_approval.domain.model import AlreadyDecided, InvalidDecision, Status, Verb
from hitl_approval.entrypoints.auth import CurrentReviewer, Reviewer, require
from hitl_approval.entrypoints.schemas import (
    ApprovalPage,
    ApprovalView,
    ConflictBody,
    DecisionBody,
    ErrorBody,
    HistoryItem,
)
from hitl_approval.service_layer.services import (
    ApprovalService,
    DecideCommand,
    NotFound,
    VersionMismatch,
)

router = APIRouter(prefix="/v1/approvals", tags=["approvals"])


def get_service(request: Request) -> ApprovalService:
    service: ApprovalService = request.app.state.service
    return service


ServiceDep = Annotated[ApprovalService, Depends(get_service)]


def _etag(version: int) -> str:
    return f'"{version}"'


def _parse_if_match(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(value.strip().removeprefix("W/").strip('"'))
    except ValueError:
        raise HTTPException(
            422, f"If-Match must be an ETag this API returned, got {value!r}"
        ) from None


def _conflict(status_code: int, message: str, view: ApprovalView) -> JSONResponse:
    body = ConflictBody(detail=message, approval=view)
    return JSONResponse(
        body.model_dump(mode="json"),
        status_code=status_code,
        headers={"ETag": _etag(view.version)},
    )


@router.get("", response_model=ApprovalPage)
async def list_approvals(
    service: ServiceDep,
    _: CurrentReviewer,
    status: Status | None = None,
    agent: str | None = None,
    run_id: str | None = None,
    tool: str | None = None,
    risk_level: RiskLevel | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: str | None = None,
) -> ApprovalPage:
    filters = Filters(
        status=status.value if status else None,
        agent=agent,
        run_id=run_id,
        tool=tool,
        risk_level=risk_level.value if risk_level else None,
        created_after=created_after,
        created_before=created_before,
    )
    try:
        page = await service.repo.page(filters, limit=limit, cursor=cursor)
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None
    return ApprovalPage(
        items=[ApprovalView.of_projection(doc) for doc in page.items], next_cursor=page.next_cursor
    )


@router.get("/{correlation_id}", response_model=ApprovalView, responses={404: {"model": ErrorBody}})
async def get_approval(
    correlation_id: str, service: ServiceDep, response: Response, _: CurrentReviewer
) -> ApprovalView:
    try:
        approval = await service.get(correlation_id)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    response.headers["ETag"] = _etag(approval.version)
    return ApprovalView.of(approval)


@router.post(
    "/{correlation_id}/decision",
    response_model=ApprovalView,
    responses={
        404: {"model": ErrorBody},
        409: {"model": ConflictBody, "description": "Already decided; body has the state."},
        412: {"model": ConflictBody, "description": "If-Match does not match the version."},
    },
)
async def decide(
    correlation_id: str,
    body: DecisionBody,
    service: ServiceDep,
    response: Response,
    reviewer: Annotated[Reviewer, require("reviewer")],
    if_match: Annotated[str | None, Header()] = None,
) -> ApprovalView | JSONResponse:
    command = DecideCommand(
        correlation_id=correlation_id,
        verb=Verb(body.decision),
        reviewer=reviewer.name,
        channel=Channel.API,
        arguments=body.arguments,
        comment=body.comment,
        if_match=_parse_if_match(if_match),
    )
    try:
        approval = await service.decide(command)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except InvalidDecision as exc:
        raise HTTPException(422, str(exc)) from None
    except AlreadyDecided as exc:
        return _conflict(409, str(exc), ApprovalView.of(exc.approval))
    except VersionMismatch as exc:
        return _conflict(412, str(exc), ApprovalView.of(exc.approval))
    response.headers["ETag"] = _etag(approval.version)
    return ApprovalView.of(approval)


@router.get("/{correlation_id}/history", response_model=list[HistoryItem])
async def history(
    correlation_id: str, service: ServiceDep, _: CurrentReviewer
) -> list[HistoryItem]:
    try:
        approval = await service.get(correlation_id)
    except NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    items = []
    for entry in approval.entries:
        kind = entry.type.value
        if kind == "decided":
            kind = str(entry.data.get("decision", kind))
        items.append(
            HistoryItem(
                seq=entry.seq,
                type=kind,
                at=entry.at,
                actor=entry.actor,
                channel=entry.channel.value,
                detail=entry.data,
            )
        )
    return items
