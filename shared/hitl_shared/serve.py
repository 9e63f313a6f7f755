"""The one way a hitl service process starts: JSON logs, tracing, then uvicorn."""

import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from hitl_shared import heap
from hitl_shared.logs import configure
from hitl_shared.telemetry import configure_tracing

SHUTDOWN_GRACE_SECONDS = 10


def serve(
    service: str, build_app: Callable[[], Any], *, host: str, port: int, log_level: str
) -> None:
    """Run `build_app()` under uvicorn; logging is configured before the app is built."""
    import uvicorn  # each service depends on uvicorn; shared's contracts do not need it

    configure(service, log_level)
    # Checked before anything starts: a bad value stops the service with its name.
    thresholds = heap.parse_thresholds(os.environ.get("HITL_GC_THRESHOLDS", ""))
    configure_tracing(service)
    uvicorn.run(
        settled_after_startup(build_app(), thresholds),
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        # uvloop and httptools (C) instead of asyncio's selector loop and h11 (Python): every
        # store round trip, Kafka record and HTTP request goes through them. Named, not
        # "auto", so a missing one fails the start instead of slowing the service.
        loop="uvloop",
        http="httptools",
        # Open event streams and long-polls would otherwise hold a stopping process for
        # minutes; cut off, their clients reconnect (to another replica) and miss nothing.
        timeout_graceful_shutdown=SHUTDOWN_GRACE_SECONDS,
    )


Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


def settled_after_startup(app: Any, thresholds: tuple[int, int, int] | None) -> Any:
    """The ASGI app, its heap settled (`hitl_shared.heap`) once its start-up completed."""
    if thresholds is None:
        return app

    async def settled(scope: Message, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await app(scope, receive, send)
            return

        async def send_settling(message: Message) -> None:
            if message["type"] == "lifespan.startup.complete":
                heap.settle(thresholds)
            await send(message)

        await app(scope, receive, send_settling)

    return settled
