"""Error responses of the approval API: JSON with a message a person can act on."""

from html import escape
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response

from hitl_approval.domain.errors import BrokenApproval
from hitl_approval.entrypoints.rest.schemas import ConflictBody, ErrorBody, InvalidBody

API_PREFIX = "/v1/approvals"


def summarize(errors: list[Any]) -> str:
    parts = []
    for err in errors[:5]:
        where = ".".join(str(p) for p in err.get("loc", ())) or "request"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


async def on_validation_error(request: Request, exc: Exception) -> Response:
    """A 422 whose `detail` says what to fix; other routers keep FastAPI's default."""
    assert isinstance(exc, RequestValidationError)
    if not request.url.path.startswith(API_PREFIX):
        return await request_validation_exception_handler(request, exc)
    errors = list(exc.errors())
    # Not the offending `input`: it can be huge, or not even representable as JSON.
    listed = [{k: err[k] for k in ("type", "loc", "msg") if k in err} for err in errors]
    body = {"detail": summarize(errors), "errors": jsonable_encoder(listed)}
    return JSONResponse(body, status_code=422)


async def on_broken_approval(request: Request, exc: Exception) -> Response:
    """409 with the reason for an approval stored in a form this service cannot act on."""
    assert isinstance(exc, BrokenApproval)
    if request.url.path.startswith("/ui"):
        return HTMLResponse(
            f"<!doctype html><title>Cannot show</title><p>{escape(str(exc))}</p>", 409
        )
    return JSONResponse({"detail": str(exc)}, status_code=409)


UNAUTHORIZED: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "No bearer token, or an unknown one."},
}
FORBIDDEN: dict[int | str, dict[str, Any]] = {
    403: {"model": ErrorBody, "description": "The reviewer's role or the policy forbids it."},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "No approval with this correlation id."},
}
INVALID: dict[int | str, dict[str, Any]] = {
    422: {"model": InvalidBody, "description": "The request is malformed; `detail` says how."},
}
UNREADABLE: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "The body cannot be read as JSON (e.g. not UTF-8)."},
    413: {
        "model": ErrorBody,
        "description": "The body is over 1 MiB (counted as it is read, chunked bodies too).",
    },
}
UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {
        "model": ErrorBody,
        "description": "The store or the broker is unavailable; nothing was done or lost. "
        "Retry after `Retry-After` seconds.",
        "headers": {"Retry-After": {"schema": {"type": "integer"}}},
    },
}
CONFLICT: dict[int | str, dict[str, Any]] = {
    409: {
        "model": ConflictBody,
        "description": "Already decided (or this reviewer already voted); the body carries "
        "the current state. Also (`detail` only) when the stored approval cannot be read "
        "and so can be neither decided nor cancelled.",
    },
}
BROKEN: dict[int | str, dict[str, Any]] = {
    409: {
        "model": ErrorBody,
        "description": "The stored approval cannot be read (written under older rules or "
        "damaged); `detail` says why.",
    },
}
PRECONDITION: dict[int | str, dict[str, Any]] = {
    412: {
        "model": ConflictBody,
        "description": "If-Match names another version; the body carries the current state.",
    },
}
