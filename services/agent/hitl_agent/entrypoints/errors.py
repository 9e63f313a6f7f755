"""Error responses of the agent API: JSON with a message a person can act on."""

from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response


def summarize(errors: list[Any]) -> str:
    parts = []
    for err in errors[:5]:
        where = ".".join(str(p) for p in err.get("loc", ())) or "request"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "; ".join(parts) or "invalid request"


async def on_validation_error(request: Request, exc: Exception) -> Response:
    """422 saying what to fix, without echoing the input.

    The offending input can be huge, or not representable as JSON at all (NaN), which
    would turn FastAPI's default 422 into a 500.
    """
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    listed = [{k: err[k] for k in ("type", "loc", "msg") if k in err} for err in errors]
    body = {"detail": summarize(errors), "errors": jsonable_encoder(listed)}
    return JSONResponse(body, status_code=422)
