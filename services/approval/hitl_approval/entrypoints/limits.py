"""A size cap on approval API request bodies, checked before the body is read."""

import json

from starlette.types import ASGIApp, Receive, Scope, Send

from hitl_approval.entrypoints.errors import API_PREFIX

# A decision is a verdict, a comment and edited arguments; the events it mirrors are
# refused past 1 MiB too.
MAX_BODY_BYTES = 1024 * 1024


class BodyLimit:
    """413 for an approval API request that announces a body over the cap."""

    def __init__(self, app: ASGIApp, *, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(API_PREFIX):
            length = dict(scope["headers"]).get(b"content-length", b"0")
            if length.isdigit() and int(length) > self.max_bytes:
                body = json.dumps(
                    {"detail": f"request body over {self.max_bytes} bytes; send less"}
                ).encode()
                headers = [
                    (b"content-type", b"application/json"),
                    (b"content-length", b"%d" % len(body)),
                ]
                await send({"type": "http.response.start", "status": 413, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
