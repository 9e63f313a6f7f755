"""Structured JSON logs to stderr, with correlation ids where a line has them.

Ids come from `extra=` or, failing that, from what the current task is about
(`hitl_shared.context`, bound by the consumer wrapper and the HTTP routes) and the
current trace, so lines logged deep inside a handler carry them too.
"""

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from hitl_shared import context, telemetry

_EXTRA_KEYS = (
    "correlation_id",
    "run_id",
    "task_id",
    "event",
    "decision",
    "reviewer",
    "trace_id",
    "span_id",
)


class ContextFilter(logging.Filter):
    """Adds the task's ids and the trace's ids to records that do not name them."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in (context.ids() | telemetry.trace_ids()).items():
            if getattr(record, key, None) is None:
                setattr(record, key, value)
        return True


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in _EXTRA_KEYS:
            if (value := getattr(record, key, None)) is not None:
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure(service: str, level: str = "INFO") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("aiokafka", "pymongo", "httpx", "httpcore", "uvicorn.access", "openai"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
