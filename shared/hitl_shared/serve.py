"""The one way a hitl service process starts: JSON logs, tracing, then uvicorn."""

from collections.abc import Callable
from typing import Any

from hitl_shared.logs import configure
from hitl_shared.telemetry import configure_tracing

SHUTDOWN_GRACE_SECONDS = 10


def serve(
    service: str, build_app: Callable[[], Any], *, host: str, port: int, log_level: str
) -> None:
    """Run `build_app()` under uvicorn; logging is configured before the app is built."""
    import uvicorn  # each service depends on uvicorn; shared's contracts do not need it

    configure(service, log_level)
    configure_tracing(service)
    uvicorn.run(
        build_app(),
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
