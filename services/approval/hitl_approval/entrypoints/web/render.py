"""Templates, static files and the headers every page carries."""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.templating import Jinja2Templates
from hitl_contracts import reading

from hitl_approval.entrypoints.web import present

HERE = Path(__file__).parent
STATIC = {"app.css": "text/css", "app.js": "text/javascript", "runs.js": "text/javascript"}

templates = Jinja2Templates(directory=HERE / "templates")
templates.env.globals.update(
    age=present.age,
    duration=reading.duration,
    time_left=present.time_left,
    urgent=present.urgent,
    stamp=present.stamp,
    value=reading.value,
    summary=present.summary,
    is_list=present.is_list_of_scalars,
)
# An id in a URL path is one segment whatever it holds ("/", "?", "#", "..").
templates.env.filters["segment"] = lambda value: quote(str(value), safe="")

# No inline script or style: the CSP forbids both, so injected markup cannot run.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def page(
    request: Request, name: str, context: dict[str, Any], *, status_code: int = 200
) -> HTMLResponse:
    context = {"now": datetime.now(UTC), **context}
    return templates.TemplateResponse(
        request, name, context, status_code=status_code, headers=SECURITY_HEADERS
    )


static_router = APIRouter(prefix="/ui")


@static_router.get("/static/{name}", include_in_schema=False)
async def static(name: str) -> FileResponse:
    if name not in STATIC:
        raise HTTPException(404, f"no static file {name!r}")
    return FileResponse(
        HERE / "static" / name,
        media_type=STATIC[name],
        headers={"Cache-Control": "public, max-age=300", "X-Content-Type-Options": "nosniff"},
    )
