"""`POST /v1/approvals`: any agent runtime asks for an approval over HTTP."""

import hashlib
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from urllib.parse import quote

from aiokafka.errors import KafkaError
from fastapi import APIRouter, Header
from fastapi.responses import JSONResponse
from hitl_contracts import ApprovalRequested, OnTimeout, RequestContext, RiskLevel
from hitl_contracts.approval import MAX_WAIT, EditPolicy
from hitl_contracts.identity import same_identity
from hitl_contracts.plain import PlainObject
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError
from pymongo.errors import ConnectionFailure

from hitl_approval.domain.reviewer import Reviewer, Role
from hitl_approval.entrypoints.rest.api import ServiceDep, etag
from hitl_approval.entrypoints.rest.auth import require_any
from hitl_approval.entrypoints.rest.errors import (
    API_PREFIX,
    FORBIDDEN,
    INVALID,
    UNAUTHORIZED,
    UNREADABLE,
    summarize,
)
from hitl_approval.entrypoints.rest.schemas import ApprovalView, ConflictBody, ErrorBody
from hitl_approval.service_layer.creating import DifferentRequest, create

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/approvals", tags=["approvals"])

DEFAULT_TIMEOUT = timedelta(minutes=30)
# Ids travel in URLs, headers, logs and store keys: no control characters.
PRINTABLE = r"^[^\x00-\x1f\x7f]+$"
RETRY_AFTER_SECONDS = 2

EXAMPLE: dict[str, Any] = {
    "correlation_id": "invoice-4711-pay",
    "run_id": "graph-run-93",
    "agent": "payables",
    "tool": "transfer",
    "arguments": {"to_account": "acme-gmbh", "amount": 1200},
    "arguments_schema": {
        "type": "object",
        "properties": {"to_account": {"type": "string"}, "amount": {"type": "number"}},
        "required": ["to_account", "amount"],
    },
    "reason": "payments above 1000 need a human",
    "risk_level": "high",
    "context": {
        "user_request": "Pay ACME's invoice 4711",
        "agent_reasoning": "Invoice matches PO 88; due tomorrow.",
    },
    "timeout_seconds": 3600,
    "on_timeout": "reject",
}


class CreateBody(BaseModel):
    """The fields of `approval.requested` a caller chooses; the server adds ids and clocks."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                EXAMPLE,
                {
                    "tool": "delete_file",
                    "arguments": {"path": "/srv/reports/2025.csv"},
                    "reason": "deleting files needs approval",
                },
            ]
        },
    )

    correlation_id: str | None = Field(
        default=None,
        min_length=1,
        pattern=PRINTABLE,
        max_length=512,
        description="Your id for this approval (e.g. your task token); the same id with the "
        "same content returns the stored approval (200). Unset: derived from the "
        "Idempotency-Key header, or a new UUID.",
    )
    run_id: str | None = Field(
        default=None,
        min_length=1,
        pattern=PRINTABLE,
        max_length=512,
        description="Your run / thread / job id, for listing and filtering; unset: the "
        "correlation id.",
    )
    agent: str | None = Field(
        default=None,
        min_length=1,
        pattern=PRINTABLE,
        max_length=200,
        description="Agent name; unset: the caller's principal name.",
    )
    tool: str = Field(min_length=1, max_length=200, pattern=PRINTABLE, examples=["transfer"])
    arguments: PlainObject = Field(examples=[{"to_account": "alice", "amount": 500}])
    arguments_schema: PlainObject | None = Field(
        default=None, description="JSON schema a reviewer's edited arguments must satisfy."
    )
    tool_call_id: str = Field(default="", max_length=512)
    reason: str = Field(min_length=1, max_length=4000, description="Why approval is needed.")
    risk_level: RiskLevel = RiskLevel.MEDIUM
    context: RequestContext | None = Field(
        default=None, description="What the reviewer needs to judge it; unset: the reason."
    )
    timeout_seconds: float | None = Field(
        default=None,
        gt=0,
        le=MAX_WAIT.total_seconds(),
        description="How long reviewers have (default 1800); or give `expires_at`.",
    )
    expires_at: AwareDatetime | None = Field(default=None, description="Absolute deadline.")
    on_timeout: OnTimeout = OnTimeout.REJECT
    escalation_seconds: float | None = Field(default=None, gt=0, le=MAX_WAIT.total_seconds())
    edit_policy: EditPolicy | None = None
    requested_by: str | None = Field(
        default=None,
        max_length=200,
        description="Who asked (four-eyes: they may not approve). From your token; only an "
        "admin may name someone else.",
    )


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Instead of `correlation_id`: the same key (per caller) with the same "
        "content gives the same approval.",
    ),
]

APPROVAL_HEADERS = {
    "ETag": {"description": "The version, for If-Match.", "schema": {"type": "string"}},
    "Location": {"description": "Where the approval is read.", "schema": {"type": "string"}},
}


def _correlation_id(body: CreateBody, caller: Reviewer, key: str | None) -> str:
    if body.correlation_id:
        return body.correlation_id
    if key is not None:
        # Per caller: two callers' equal keys are two requests.
        digest = hashlib.sha256(f"{caller.name}\n{key}".encode()).hexdigest()[:32]
        return f"key-{digest}"
    return str(uuid.uuid4())


def _problem(status_code: int, detail: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"detail": detail, **extra}, status_code=status_code)


@router.post(
    "",
    status_code=201,
    response_model=ApprovalView,
    responses={
        200: {
            "model": ApprovalView,
            "description": "The same request was made before: the stored approval.",
            "headers": APPROVAL_HEADERS,
        },
        201: {"description": "Stored and announced to reviewers.", "headers": APPROVAL_HEADERS},
        **UNAUTHORIZED,
        **FORBIDDEN,
        409: {
            "model": ConflictBody,
            "description": "The correlation id (or Idempotency-Key) is taken by a request "
            "with other content; `detail` names the fields.",
        },
        **INVALID,
        **UNREADABLE,
        503: {"model": ErrorBody, "description": "Broker or store unavailable; retry."},
    },
    summary="Ask for an approval (any agent runtime)",
)
async def create_approval(
    body: CreateBody,
    service: ServiceDep,
    caller: Annotated[Reviewer, require_any(Role.AGENT)],
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Validated like an `approval.requested` event, then stored and announced like one:
    reviewers, notifications, policies, timeouts, four-eyes, quorum and history all apply.
    Await the outcome with `GET /v1/approvals/{id}?wait=30` or `GET /v1/approvals/{id}/events`.
    """
    requested_by = body.requested_by if body.requested_by is not None else caller.name
    if not same_identity(requested_by, caller.name) and not caller.can(Role.ADMIN):
        return _problem(
            403,
            f"requested_by comes from your token ({caller.name!r}); only an admin may "
            f"request on behalf of {requested_by!r}",
        )
    if body.timeout_seconds is not None and body.expires_at is not None:
        return _problem(422, "give timeout_seconds or expires_at, not both")
    now = datetime.now(UTC)
    if body.expires_at is not None:
        expires_at = body.expires_at
    elif body.timeout_seconds is not None:
        expires_at = now + timedelta(seconds=body.timeout_seconds)
    else:
        expires_at = now + DEFAULT_TIMEOUT
    correlation_id = _correlation_id(body, caller, idempotency_key)
    fields = body.model_dump(exclude={"timeout_seconds", "correlation_id", "context"})
    fields |= {
        "correlation_id": correlation_id,
        "run_id": body.run_id or correlation_id,
        "agent": body.agent or caller.name,
        "requested_by": requested_by,
        "context": body.context or RequestContext(user_request=body.reason),
        "requested_at": now,
        "expires_at": expires_at,
    }
    try:
        # The Kafka path's model and rules, word for word.
        event = ApprovalRequested.model_validate(fields)
    except ValidationError as exc:
        errors = exc.errors(include_input=False, include_url=False)
        listed = [{"type": e["type"], "loc": list(e["loc"]), "msg": e["msg"]} for e in errors]
        return _problem(422, summarize(listed), errors=listed)
    try:
        approval, created = await create(service, event)
    except DifferentRequest as exc:
        view = ApprovalView.of(exc.approval).model_dump(mode="json")
        return _problem(409, str(exc), approval=view)
    except (KafkaError, ConnectionFailure) as exc:
        log.warning("approval %s not created: %s", correlation_id, exc)
        return JSONResponse(
            {
                "detail": "the broker or the store is unavailable; retry with the same "
                "correlation_id / Idempotency-Key"
            },
            status_code=503,
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )
    headers = {
        "ETag": etag(approval.version),
        "Location": f"{API_PREFIX}/{quote(correlation_id, safe='')}",
    }
    if not created:
        headers["Idempotent-Replayed"] = "true"
    return JSONResponse(
        ApprovalView.of(approval).model_dump(mode="json"),
        status_code=201 if created else 200,
        headers=headers,
    )
