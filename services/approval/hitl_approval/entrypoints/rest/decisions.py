"""REST routes that change approvals: a reviewer's decision, a run's cancellation."""

from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import APIRouter, Header, Request
from fastapi.responses import JSONResponse
from hitl_contracts import Channel

from hitl_approval.adapters.idempotency import (
    IdempotencyStore,
    StoredResponse,
    fingerprint,
    key_id,
)
from hitl_approval.domain.model import (
    Approval,
    BrokenApproval,
    Conflict,
    InvalidDecision,
    NotAllowed,
    Verb,
)
from hitl_approval.domain.reviewer import Reviewer, Role
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
from hitl_approval.service_layer.services import (
    ApprovalService,
    DecideCommand,
    NotFound,
    VersionMismatch,
)

router = APIRouter(prefix="/v1/approvals", tags=["approvals"])

# Responses a retry with the same Idempotency-Key replays: the ones that reflect state.
REPLAYED = frozenset({200, 409, 412})

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
        return (await _decide(service, command)).response()

    store: IdempotencyStore = request.app.state.idempotency
    asked = fingerprint(correlation_id, body.model_dump(mode="json"), version)
    key = key_id(reviewer.name, idempotency_key)
    command.idempotency = f"{key}:{asked}"
    stored = await store.get(reviewer.name, idempotency_key)
    if stored is None:
        outcome = await _decide(service, command)
        if outcome.status_code == 409 and (earlier := await _recorded(service, command, key)):
            # Our own decision, stored by a process that died before remembering the
            # response: the retry gets it back, not a 409 about itself.
            stored = await store.remember(
                reviewer.name, idempotency_key, earlier, now=service.clock()
            )
        elif outcome.status_code not in REPLAYED:
            return outcome.response()
        else:
            mine = StoredResponse(asked, outcome.status_code, outcome.body, outcome.headers)
            stored = await store.remember(reviewer.name, idempotency_key, mine, now=service.clock())
            if stored is mine:
                return outcome.response()
    if stored.fingerprint != asked:
        return _error(
            422,
            f"Idempotency-Key {idempotency_key!r} was already used for a different request; "
            "use a new key for a new decision",
        ).response()
    return JSONResponse(
        stored.body,
        status_code=stored.status_code,
        headers={**stored.headers, "Idempotent-Replayed": "true"},
    )


async def _recorded(
    service: ApprovalService, command: DecideCommand, key: str
) -> StoredResponse | None:
    """The 200 a decision made with this Idempotency-Key got, rebuilt from the stream."""
    try:
        approval = await service.get(command.correlation_id)
    except (NotFound, BrokenApproval):
        return None
    entry = approval.entry_for(key)
    if entry is None:
        return None
    first = _state(200, approval.as_of(entry.seq))
    return StoredResponse(entry.idempotency.partition(":")[2], 200, first.body, first.headers)


async def _decide(service: ApprovalService, command: DecideCommand) -> Outcome:
    try:
        approval = await service.decide(command)
    except NotFound as exc:
        return _error(404, str(exc))
    except BrokenApproval as exc:
        return _error(409, str(exc))
    except NotAllowed as exc:
        return _error(403, str(exc))
    except InvalidDecision as exc:
        return _error(422, str(exc))
    except Conflict as exc:
        return _state(409, exc.approval, str(exc))
    except VersionMismatch as exc:
        return _state(412, exc.approval, str(exc))
    return _state(200, approval)


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
    except NotFound as exc:
        return _error(404, str(exc)).response()
    except BrokenApproval as exc:
        return _error(409, str(exc)).response()
    except Conflict as exc:
        return _state(409, exc.approval, str(exc)).response()
    return _state(200, approval).response()
