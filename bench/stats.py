"""Latency summaries: percentiles by the nearest-rank method, in milliseconds."""

import math
from collections.abc import Sequence
from typing import Any


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def summarize(seconds: Sequence[float]) -> dict[str, Any]:
    """p50/p95/p99/max/mean of durations given in seconds, reported in ms."""
    if not seconds:
        return {"n": 0}
    ms = [s * 1000 for s in seconds]
    return {
        "n": len(ms),
        "p50_ms": round(percentile(ms, 50), 2),
        "p95_ms": round(percentile(ms, 95), 2),
        "p99_ms": round(percentile(ms, 99), 2),
        "max_ms": round(max(ms), 2),
        "mean_ms": round(sum(ms) / len(ms), 2),
    }


def by_window(seconds: Sequence[float], windows: int = 4) -> list[dict[str, Any]]:
    """Summaries of consecutive slices: shows whether latency drifts as the store grows."""
    size = math.ceil(len(seconds) / windows) if seconds else 0
    return [summarize(seconds[i : i + size]) for i in range(0, len(seconds), size)] if size else []
