"""Human-readable tables and times, or JSON for scripts."""

import contextlib
import json
from datetime import UTC, datetime
from typing import Any

import click
from hitl_contracts.reading import duration, value


def emit_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def table(headers: list[str], rows: list[list[str]]) -> str:
    """Left-aligned columns wide enough for their longest cell; no box drawing."""
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]
    lines = ["  ".join(h.upper().ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    for row in rows:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())
    return "\n".join(lines)


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def age(iso: str, now: datetime | None = None) -> str:
    return duration(((now or datetime.now(UTC)) - parse_time(iso)).total_seconds())


def left(iso: str, now: datetime | None = None) -> str:
    seconds = (parse_time(iso) - (now or datetime.now(UTC))).total_seconds()
    return "expired" if seconds <= 0 else duration(seconds)


def arguments(args: Any, limit: int = 60) -> str:
    """`k=v, ...`; a model's raw JSON text is decoded first, anything else shown as is."""
    if isinstance(args, str):
        with contextlib.suppress(json.JSONDecodeError):
            args = json.loads(args)
    if isinstance(args, dict):
        text = ", ".join(f"{k}={value(v)}" for k, v in args.items())
    else:
        text = "" if args is None else value(args)
    return text if len(text) <= limit else text[: limit - 1] + "…"
