"""The notifier's store on the real server: periodic and per-decision work is found
through small marker collections, never by reading the history."""

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hitl_contracts import ApprovalRequested, NotificationKind
from hitl_notifier.adapters.store import ASKED, OPEN, REMINDERS, NotifierStore
from hitl_notifier.domain.deliveries import Delivery, Target
from pymongo.asynchronous.database import AsyncDatabase

from tests.factories import approval_request

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 1, tzinfo=UTC)
Database = AsyncDatabase[dict[str, Any]]


def request() -> ApprovalRequested:
    return approval_request(run_id="r", at=T0, timeout=timedelta(hours=1))


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
