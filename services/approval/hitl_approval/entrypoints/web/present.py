"""How times, risks and arguments read on the page (pure)."""

from datetime import datetime
from typing import Any

from hitl_contracts.reading import duration, value

RISK_ORDER = {"critical": 0, "high": 1, "medium": 2, "low": 3}


def age(since: datetime, now: datetime) -> str:
    return duration((now - since).total_seconds())


def time_left(until: datetime, now: datetime) -> str:
    left = (until - now).total_seconds()
    return "expired" if left <= 0 else duration(left)


def urgent(until: datetime, now: datetime) -> bool:
    """Under five minutes left: the page highlights it."""
    return (until - now).total_seconds() < 300


def stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S UTC")


def summary(arguments: dict[str, Any], limit: int = 80) -> str:
    text = ", ".join(f"{k}={value(v)}" for k, v in arguments.items())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def is_list_of_scalars(v: Any) -> bool:
    return isinstance(v, list) and all(isinstance(i, str | int | float) for i in v)
