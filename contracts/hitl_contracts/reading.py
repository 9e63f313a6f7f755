"""How values read for a person, the same on the web pages and in the CLI."""

import json
from typing import Any


def duration(seconds: float) -> str:
    """Two units at most: '45s', '3m 20s', '2h 5m', '3d 4h'."""
    seconds = int(max(seconds, 0))
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    if minutes:
        return f"{minutes}m {secs}s" if secs else f"{minutes}m"
    return f"{secs}s"


def value(v: Any) -> str:
    """An argument value as a person reads it: strings bare, everything else as JSON."""
    if isinstance(v, str):
        return v
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return json.dumps(v, ensure_ascii=False)
