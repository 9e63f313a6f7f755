"""Log store commands that took longer than `MONGODB_SLOW_MS` (a PyMongo command listener).

On FerretDB 1.x a filter it cannot answer by `_id` reads the whole collection, so a
hot path that grows with history shows up here first: the log names the command,
the collection and the filter's field names (never their values: they may be
personal data), e.g. `slow store command: find on approvals_archive
{correlation_id, status} took 812 ms`.
"""

import logging
from typing import Any

from pymongo import monitoring

log = logging.getLogger("hitl.store.slow")

# Commands whose first value names the collection; the filter sits under these keys.
_FILTER_KEYS = ("filter", "query", "q")
# Started commands waiting for their outcome: bounded, as a server that never answers
# must not make this grow.
_MAX_PENDING = 10_000


class SlowCommands(monitoring.CommandListener):
    def __init__(self, threshold_ms: int) -> None:
        self.threshold_ms = threshold_ms
        self._started: dict[tuple[Any, int], str] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if len(self._started) >= _MAX_PENDING:
            self._started.clear()
        self._started[(event.connection_id, event.request_id)] = describe(event.command)

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self._finished(event, "")

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._finished(event, " (failed)")

    def _finished(
        self, event: monitoring.CommandSucceededEvent | monitoring.CommandFailedEvent, note: str
    ) -> None:
        what = self._started.pop((event.connection_id, event.request_id), None)
        took_ms = event.duration_micros / 1000
        if what is not None and took_ms >= self.threshold_ms:
            log.warning("slow store command: %s took %.0f ms%s", what, took_ms, note)


def describe(command: Any) -> str:
    """`find on runs {_id, seq}`: the command, its collection, its filter's field names."""
    try:
        name = next(iter(command))
    except (StopIteration, TypeError):
        return "?"
    target = command.get(name)
    text = f"{name} on {target}" if isinstance(target, str) else str(name)
    fields: list[str] = []
    for key in _FILTER_KEYS:
        _collect(command.get(key), fields)
    for entry in command.get("updates", []) or command.get("deletes", []) or []:
        if isinstance(entry, dict):
            _collect(entry.get("q"), fields)
    if fields:
        text += " {" + ", ".join(dict.fromkeys(fields)) + "}"
    return text


def _collect(filter_: Any, into: list[str]) -> None:
    if not isinstance(filter_, dict):
        return
    for key, value in filter_.items():
        if key in ("$and", "$or", "$nor") and isinstance(value, list):
            for part in value:
                _collect(part, into)
        else:
            into.append(str(key))
