"""The notifier's store on the real server: periodic and per-decision work is found
through small marker collections, never by reading the history."""

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hitl_contracts import ApprovalDecided, ApprovalRequested, NotificationKind
from hitl_notifier.adapters.store import APPROVALS, ASKED, OPEN, REMINDERS, NotifierStore
from hitl_notifier.domain.deliveries import Delivery, Target
from pymongo.asynchronous.database import AsyncDatabase

from tests.factories import approval_decision, approval_request

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, tzinfo=UTC)
Database = AsyncDatabase[dict[str, Any]]


def request() -> ApprovalRequested:
    return approval_request(correlation_id="c-1", run_id="r", at=T0, timeout=timedelta(hours=1))


def decision() -> ApprovalDecided:
    return approval_decision(request(), at=T0 + timedelta(minutes=3))


async def test_work_is_found_through_markers_that_leave_when_it_is_done(db: Database) -> None:
    store = NotifierStore(db)
    await store.ensure_indexes()
    req = request()
    await store.remember(req, remind_at=T0 + timedelta(minutes=30), escalated=False)
    ask = Delivery(req.correlation_id, "r", NotificationKind.REQUESTED, Target("webhook", "h"))
    lease = T0 + timedelta(seconds=30)
    assert await store.claim(ask, now=T0, lease_until=lease)
    assert not await store.claim(ask, now=T0, lease_until=lease), "claimed once"

    assert await store.due_reminders(T0) == []
    (due,) = await store.due_reminders(T0 + timedelta(minutes=31))
    assert due.correlation_id == req.correlation_id
    (lost,) = await store.abandoned(T0 + timedelta(minutes=1))
    assert lost.delivery.key == ask.key

    await store.finish(ask.key, status="sent", attempts=1, now=T0)
    await store.mark_reminded(req.correlation_id)
    assert await store.abandoned(T0 + timedelta(minutes=1)) == []
    assert await store.due_reminders(T0 + timedelta(minutes=31)) == []
    (sent,) = await store.sent(req.correlation_id)
    assert sent.delivery.key == ask.key
    await store.followed_up([ask.key])
    assert await store.sent(req.correlation_id) == []
    for marker in (OPEN, ASKED, REMINDERS):
        assert await db[marker].count_documents({}) == 0, marker


async def test_a_decision_is_recorded_in_one_round_trip_that_answers_the_state(
    db: Database,
) -> None:
    store, req, decided = NotifierStore(db), request(), decision()
    await store.remember(req, remind_at=T0 + timedelta(minutes=30), escalated=False)
    state = await store.record_decision(decided)
    assert state.request == req
    assert state.decision == decided
    assert await db[REMINDERS].count_documents({}) == 0, "a decided approval is not reminded"
    assert await store.state(req.correlation_id) == state
    # Redelivered: the same state, no error.
    assert await store.record_decision(decided) == state


async def test_a_decision_that_overtakes_its_request_is_kept_and_so_is_the_request(
    db: Database,
) -> None:
    store, req, decided = NotifierStore(db), request(), decision()
    # Two replicas record it at once on a store with no document yet: both succeed.
    first, second = await asyncio.gather(
        store.record_decision(decided), store.record_decision(decided)
    )
    assert first.request is None
    assert first.decision == decided
    assert second.decision == decided
    assert (await db[APPROVALS].find_one({"_id": req.correlation_id}) or {}).get("run_id") == "r"
    later = await store.remember(req, remind_at=T0 + timedelta(minutes=30), escalated=False)
    assert later.decision == decided, "the late request finds it decided"
    assert later.request == req
