"""The benchmark's tap: each event wakes exactly the waiters for its run and type."""

import asyncio
import json

import pytest

from bench.tap import RunTap


def _event(run_id: str, type_: str) -> bytes:
    return json.dumps(
        {"run_id": run_id, "type": type_, "occurred_at": "2026-12-03T12:00:00+00:00"}
    ).encode()


async def test_waiters_get_their_own_event_received_after_their_start() -> None:
    tap = RunTap()
    tap.record(_event("r1", "resumed"), received=1.0)
    # Already there, and received after `after`: returned at once.
    assert (await tap.wait_for("r1", "resumed", timeout=1, after=0.5)).received == 1.0
    early = asyncio.create_task(tap.wait_for("r1", "tool_executed", timeout=5, after=2.0))
    other = asyncio.create_task(tap.wait_for("r2", "tool_executed", timeout=5))
    await asyncio.sleep(0)
    tap.record(_event("r1", "tool_executed"), received=1.5)  # before `after`: not it
    tap.record(_event("r1", "completed"), received=2.5)  # another type: not it
    await asyncio.sleep(0)
    assert not early.done()
    assert not other.done()
    tap.record(_event("r1", "tool_executed"), received=3.0)
    assert (await early).received == 3.0
    assert not other.done()
    other.cancel()


async def test_a_wait_without_its_event_times_out_and_malformed_events_are_ignored() -> None:
    tap = RunTap()
    tap.record(b"not json", received=1.0)
    tap.record(json.dumps({"run_id": "r1"}).encode(), received=1.0)
    with pytest.raises(TimeoutError, match="no resumed event for run r1"):
        await tap.wait_for("r1", "resumed", timeout=0.05)
    assert tap.seen == {}
