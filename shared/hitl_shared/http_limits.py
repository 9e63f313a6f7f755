"""What every hitl HTTP API answers at its limits: body size, and its store or broker away.

- `BodyLimit` caps request bodies on the bytes actually read, not only on what
  `Content-Length` announces: a chunked body is counted as it arrives and cut off
  with 413 at the cap, without being read whole.
- `install_unavailable_handlers` turns "the store or the broker is unreachable" into
  JSON 503 with `Retry-After`, instead of a plain-text 500: the caller should retry,
  and nothing it asked for was lost or half done (the use cases store before they
  publish, and publish again from their outbox).
"""

import asyncio
import json

from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, NodeNotReadyError
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pymongo.errors import (
    AutoReconnect,
    ConnectionFailure,
    ExecutionTimeout,
    NetworkTimeout,
    ServerSelectionTimeoutError,
)
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = [
    "MAX_BODY_BYTES",
    "BodyLimit",
    "Unavailable",
    "install_unavailable_handlers",
]

# A run request, a decision or an approval request is small; the events they become are
# refused past 1 MiB on Kafka too.
MAX_BODY_BYTES = 1024 * 1024
RETRY_AFTER_SECONDS = 2
# An announced body up to this many times the cap is read and dropped before the 413.
DRAIN_FACTOR = 4


class _TooLarge(HTTPException):
    def __init__(self, max_bytes: int) -> None:
        super().__init__(413, f"request body over {max_bytes} bytes; send less")


class BodyLimit:
    """413 for any request whose body is, or turns out to be, over the cap."""

    def __init__(self, app: ASGIApp, *, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length", b"")
        if length.isdigit() and int(length) > self.max_bytes:
            if int(length) <= self.max_bytes * DRAIN_FACTOR:
                # Answering before the client finished sending makes the close reset the
                # connection, and the client sees a broken pipe instead of the 413. A body
                # a few times the cap is cheap to read and drop; a huge one is cut off.
                await _drain(receive)
            await self._refuse(send)
            return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    # FastAPI re-raises an HTTPException met while reading the body.
                    raise _TooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            # Read outside FastAPI's body handling (a form, a stream): answer here.
            if started:
                raise
            await self._refuse(send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps({"detail": f"request body over {self.max_bytes} bytes; send less"})
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(body)),
            (b"connection", b"close"),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": headers})
        await send({"type": "http.response.body", "body": body.encode()})


async def _drain(receive: Receive) -> None:
    while True:
        message = await receive()
        if message["type"] != "http.request" or not message.get("more_body", False):
            return


class Unavailable(Exception):
    """A use case could not reach the store or the broker in time; the caller retries."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what


STORE_ERRORS = (ServerSelectionTimeoutError, AutoReconnect, ConnectionFailure, NetworkTimeout)
BROKER_ERRORS = (KafkaConnectionError, KafkaTimeoutError, NodeNotReadyError)


def unavailable_response(what: str) -> JSONResponse:
    return JSONResponse(
        {"detail": f"{what} is unavailable right now; nothing was lost, retry shortly"},
        status_code=503,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def install_unavailable_handlers(app: FastAPI) -> None:
    """Map store and broker outages (and `Unavailable`) to JSON 503 + Retry-After."""

    async def store_down(request: Request, exc: Exception) -> JSONResponse:
        return unavailable_response("the store")

    async def broker_down(request: Request, exc: Exception) -> JSONResponse:
        return unavailable_response("the message broker")

    async def timed_out(request: Request, exc: Exception) -> JSONResponse:
        return unavailable_response("a backing service")

    async def named(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, Unavailable)
        return unavailable_response(exc.what)

    for error in (*STORE_ERRORS, ExecutionTimeout):
        app.add_exception_handler(error, store_down)
    for error in BROKER_ERRORS:
        app.add_exception_handler(error, broker_down)
    app.add_exception_handler(asyncio.TimeoutError, timed_out)
    app.add_exception_handler(Unavailable, named)
