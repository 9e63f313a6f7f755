"""What the current task is about: ids for log lines, and the event being handled.

Set once where work enters a service (a consumed message, an HTTP route), read
anywhere below it, so a line logged deep inside a handler carries the ids without
each caller passing them along.
"""

import contextlib
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any

correlation_id: ContextVar[str | None] = ContextVar("correlation_id", default=None)
run_id: ContextVar[str | None] = ContextVar("run_id", default=None)
# The event a consumer is handling, for code that reacts to its cause (e.g. resume latency).
handling: ContextVar[Any] = ContextVar("handling", default=None)

_IDS = {"correlation_id": correlation_id, "run_id": run_id}


def ids() -> dict[str, str]:
    return {name: value for name, var in _IDS.items() if (value := var.get()) is not None}


@contextlib.contextmanager
def bound(**values: str | None) -> Iterator[None]:
    """Bind the given ids (None ones are skipped) for the duration of the block."""
    tokens = [(_IDS[k], _IDS[k].set(v)) for k, v in values.items() if v is not None and k in _IDS]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def bind(**values: str | None) -> None:
    """Bind ids until the current task ends (for request handlers and dependencies)."""
    for key, value in values.items():
        if value is not None and key in _IDS:
            _IDS[key].set(value)


def ids_of(event: Any) -> dict[str, str | None]:
    """The ids an event carries; a task's id is also its run's id."""
    run = getattr(event, "run_id", None) or getattr(event, "task_id", None)
    return {"correlation_id": getattr(event, "correlation_id", None), "run_id": run}
