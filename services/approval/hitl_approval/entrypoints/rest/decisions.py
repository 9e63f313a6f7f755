"""REST routes that change approvals: a reviewer's decision, a run's cancellation."""

from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse
from hitl_contracts import Channel

from hitl_approval.adapters.idempotency import fingerprint
from hitl_approval.domain.errors import ApprovalError
from hitl_approval.domain.model import Approval, Verb
from hitl_approval.domain.reviewer import Reviewer, Role
from hitl_approval.entrypoints.refusals import refusal
from hitl_approval.entrypoints.rest.api import CorrelationId, ServiceDep, etag
from hitl_approval.entrypoints.rest.auth import require_any
from hitl_approval.entrypoints.rest.errors import (
    CONFLICT,
    FORBIDDEN,
    INVALID,
    NOT_FOUND,
    PRECONDITION,
    UNAUTHORIZED,
    UNAVAILABLE,
    UNREADABLE,
)
from hitl_approval.entrypoints.rest.schemas import ApprovalView, CancelBody, DecisionBody
from hitl_approval.service_layer.idempotent import KeyReused, decide_once
from hitl_approval.service_layer.ports import IdempotencyKeys, StoredResponse
from hitl_approval.service_layer.services import DecideCommand

router = APIRouter(prefix="/v1/approvals", tags=["approvals"])

IfMatch = Annotated[
    str | None,
    Header(
        max_length=64,
        description='The `ETag` of the version you reviewed (e.g. `"0"`); 412 if it moved on.',
    ),
]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Any unique string per intended decision; a retry with the same key "
        "gets the first response again (for 24 h by default), not a 409.",
    ),
]
ETAG_HEADER = {
    "ETag": {"description": "The new version, for If-Match.", "schema": {"type": "string"}}
}


@dataclass(frozen=True)
class Outcome:
    status_code: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)

    def response(self, **extra_headers: str) -> JSONResponse:
        return JSONResponse(
            self.body, status_code=self.status_code, headers={**self.headers, **extra_headers}
        )


def _state(status_code: int, approval: Approval, detail: str | None = None) -> Outcome:
    view = ApprovalView.of(approval).model_dump(mode="json")
    body = view if detail is None else {"detail": detail, "approval": view}
    return Outcome(status_code, body, {"ETag": etag(approval.version)})


def _error(status_code: int, detail: str) -> Outcome:
    return Outcome(status_code, {"detail": detail})


def _if_match(value: str | None) -> int | Outcome | None:
    if value is None or value.strip() == "*":
        return None
    try:
        return int(value.strip().removeprefix("W/").strip('"'))
    except ValueError:
        return _error(
            422, f"If-Match must be an ETag this API returned (like '\"3\"'), got {value!r}"
        )


@router.post(
    "/{correlation_id}/decision",
    response_model=ApprovalView,
    responses={
        200: {"description": "The decision (or quorum vote) is recorded.", "headers": ETAG_HEADER},
        **UNAUTHORIZED,
        **FORBIDDEN,
        **NOT_FOUND,
        **CONFLICT,
        **PRECONDITION,
        **INVALID,
        **UNREADABLE,
        **UNAVAILABLE,
    },
    summary="Approve, modify or reject a pending approval",
)
async def decide(
    correlation_id: CorrelationId,
    body: DecisionBody,
    request: Request,
    service: ServiceDep,
    reviewer: Annotated[Reviewer, require_any(Role.REVIEWER)],
    if_match: IfMatch = None,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Exactly one decision wins: every other gets 409 with the state that won.

    Under a quorum policy an approval that does not complete the quorum is recorded as a
    vote and the approval stays `pending` (see `approvers`); any rejection ends it.
    Four-eyes: the submitter (`requested_by`, compared without case or Unicode form) may
    not approve or modify, only reject (403); with no known submitter the service's
    APPROVAL_FOUR_EYES_UNKNOWN_SUBMITTER decides. `modify` must fit the tool's schema and
    its `edit_policy`: locked fields unchanged, `not_above` fields not raised, no new
    fields (422 with the reason). The decision's `signature` verifies against
    `GET /v1/keys`.
    """
    version = _if_match(if_match)
    if isinstance(version, Outcome):
        return version.response()
    command = DecideCommand(
        correlation_id=correlation_id,
        verb=Verb(body.decision),
        reviewer=reviewer.name,
        channel=Channel.API,
        arguments=body.arguments,
        comment=body.comment,
        if_match=version,
    )
    if idempotency_key is None:
        try:
            return _state(200, await service.decide(command)).response()
        except ApprovalError as exc:
            return _refused(exc).response()
    store: IdempotencyKeys = request.app.state.idempotency
    try:
        answer, replayed = await decide_once(
            service,
            store,
            command,
            caller=reviewer.name,
            key=idempotency_key,
            asked=fingerprint(correlation_id, body.model_dump(mode="json"), version),
            render=_answer,
        )
    except KeyReused as exc:
        return _error(422, str(exc)).response()
    headers = {**answer.headers, "Idempotent-Replayed": "true"} if replayed else answer.headers
    return JSONResponse(answer.body, status_code=answer.status_code, headers=headers)


def _refused(error: ApprovalError) -> Outcome:
    refused = refusal(error)
    if refused.current is None:
        return _error(refused.status, refused.detail)
    return _state(refused.status, refused.current, refused.detail)


def _answer(result: Approval | ApprovalError) -> StoredResponse:
    """What the caller is answered, in the form an Idempotency-Key keeps it."""
    outcome = _refused(result) if isinstance(result, ApprovalError) else _state(200, result)
    return StoredResponse("", outcome.status_code, outcome.body, outcome.headers)


@router.post(
    "/{correlation_id}/cancel",
    response_model=ApprovalView,
    responses={
        200: {"description": "The approval is cancelled.", "headers": ETAG_HEADER},
        **UNAUTHORIZED,
        **FORBIDDEN,
        **NOT_FOUND,
        **CONFLICT,
        **INVALID,
        **UNREADABLE,
        **UNAVAILABLE,
    },
    summary="Cancel a pending approval (its run was cancelled)",
)
async def cancel(
    correlation_id: CorrelationId,
    service: ServiceDep,
    caller: Annotated[Reviewer, require_any(Role.ADMIN, Role.AGENT)],
    body: CancelBody | None = None,
) -> JSONResponse:
    """For admins and the agent service (role `agent`): ends it as `cancelled` via `system`."""
    comment = body.comment if body else ""
    try:
        approval = await service.cancel(correlation_id, actor=caller.name, comment=comment)
    except ApprovalError as exc:
        return _refused(exc).response()
    return _state(200, approval).response()
