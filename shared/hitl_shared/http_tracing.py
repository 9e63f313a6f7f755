"""HTTP side of observability: a server span per request, ids from the path for logs.

`instrument(app)` adds the middleware; pass `dependencies=[BIND_PATH_IDS]` to
`FastAPI(...)` so every route binds the `correlation_id` / `run_id` it is about
before its handler logs anything.
"""

from typing import Any

from fastapi import Depends, FastAPI, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hitl_shared import context, telemetry


class TracingMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        method = scope["method"]
        with telemetry.serving(method, scope["path"], headers) as span:

            async def send_with_status(message: Message) -> None:
                if message["type"] == "http.response.start":
                    span.set_attribute("http.response.status_code", message["status"])
                await send(message)

            try:
                await self.app(scope, receive, send_with_status)
            finally:
                # Name by route template, not by path: ids in paths would explode cardinality.
                route: Any = scope.get("route")
                if template := getattr(route, "path", None):
                    span.update_name(f"{method} {template}")
                    span.set_attribute("http.route", template)


async def bind_path_ids(request: Request) -> None:
    params = request.path_params
    context.bind(correlation_id=params.get("correlation_id"), run_id=params.get("run_id"))


BIND_PATH_IDS = Depends(bind_path_ids)


def instrument(app: FastAPI) -> None:
    app.add_middleware(TracingMiddleware)
