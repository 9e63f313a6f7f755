"""The notifier's store calls per approval, on the real store.

With no recipient configured anywhere, nothing about an approval can be sent, so the
notifier stores nothing for it. With nobody on an approval's route (someone on
another), it remembers the request and records its decision: two round trips, no
reminder marker, no look for questions to follow up. With a recipient, the questions are claimed and followed up as before, and an
escalation that brings the first recipient marks the approval asked before claiming.
"""

import asyncio
import random
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hitl_contracts import NotificationKind
from hitl_notifier.adapters.store import APPROVALS, ASKED, REMINDERS, NotifierStore
from hitl_notifier.domain.deliveries import Delivery
from hitl_notifier.domain.notice import Notice
from hitl_notifier.domain.routing import Route, Router, Targets, TargetsConfig
from hitl_notifier.service_layer.channels import Channels
from hitl_notifier.service_layer.dispatcher import Dispatcher, RetryPolicy
from hitl_notifier.service_layer.handlers import NotifierService
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from tests.factories import approval_decision, approval_request
from tests.fakes import CollectingOutcomes
from tests.support.commands import Commands
from tests.support.infra import Infra

pytestmark = pytest.mark.integration

HOOK = "https://hooks.example/approvals"


class SentChannels(Channels):
    """Every send succeeds; what was sent, in order."""

    def __init__(self) -> None:
        self.sent: list[Delivery] = []

    async def send(self, delivery: Delivery, notice: Notice) -> str:
        self.sent.append(delivery)
        return f"ref-{len(self.sent)}"


class Notifier:
    def __init__(self, db: AsyncDatabase[dict[str, Any]], router: Router) -> None:
        self.store = NotifierStore(db)
        self.channels = SentChannels()
        self.dispatcher = Dispatcher(
            self.store,
            self.channels,
            CollectingOutcomes(),
            policy=RetryPolicy(
                attempts=1, base_seconds=0.01, max_seconds=0.01, lease=timedelta(seconds=30)
            ),
            clock=lambda: datetime.now(UTC),
            link_for=lambda cid: f"https://hitl.example/approvals/{cid}",
            rng=random.Random(1),
        )
        self.service = NotifierService(
            self.store,
            self.dispatcher,
            router,
            clock=lambda: datetime.now(UTC),
            reminder_fraction=0.5,
            email_follow_up=False,
        )

    async def settle(self) -> None:
        await asyncio.gather(*self.dispatcher.tasks)


@pytest.fixture
async def counted(infra: Infra) -> AsyncIterator[tuple[AsyncDatabase[dict[str, Any]], Commands]]:
    commands = Commands()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        infra.mongodb_url, tz_aware=True, event_listeners=[commands]
    )
    name = f"hitl_it_{uuid.uuid4().hex[:8]}"
    try:
        yield client[name], commands
    finally:
        await client.drop_database(name)
        await client.close()


async def test_with_no_recipient_anywhere_an_approval_costs_no_store_call(
    counted: tuple[AsyncDatabase[dict[str, Any]], Commands],
) -> None:
    db, commands = counted
    notifier = Notifier(db, Router([], default=Targets()))
    assert notifier.service.silent
    request = approval_request()
    commands.counting = True
    assert await notifier.service.on_requested(request) == 0
    assert (
        await notifier.service.on_decided(approval_decision(request, at=request.requested_at)) == 0
    )
    escalated = request.model_copy(update={"escalated": True})
    assert await notifier.service.on_requested(escalated) == 0
    assert await notifier.service.tick() == 0
    commands.counting = False

    # The tick's periodic look for due reminders and abandoned deliveries is all.
    assert {c for c in commands.seen if c.split()[1] == APPROVALS} == set()
    assert all(c.startswith("find ") for c in commands.seen), commands.seen
    assert await notifier.store.state(request.correlation_id) is None
    assert notifier.channels.sent == []


async def test_an_approval_nobody_is_told_of_costs_two_round_trips(
    counted: tuple[AsyncDatabase[dict[str, Any]], Commands],
) -> None:
    db, commands = counted
    # Someone hears of another agent's approvals; nobody of this one's.
    route = Route(name="other", agents=["someone-else"], webhook=[HOOK])
    notifier = Notifier(db, Router([route], default=Targets()))
    assert not notifier.service.silent
    await notifier.store.ensure_indexes()
    request = approval_request()
    commands.counting = True
    assert await notifier.service.on_requested(request) == 0
    assert (
        await notifier.service.on_decided(approval_decision(request, at=request.requested_at)) == 0
    )
    commands.counting = False

    assert commands.seen == {
        f"insert {APPROVALS}": 1,
        f"findAndModify {APPROVALS}": 1,
    }, "no reminder marker, no look for questions to follow up"
    state = await notifier.store.state(request.correlation_id)
    assert state is not None
    assert state.decision is not None
    assert not state.asked
    assert await db[REMINDERS].count_documents({}) == 0
    assert notifier.channels.sent == []


async def test_a_recipient_is_asked_reminded_and_told_of_the_decision(
    counted: tuple[AsyncDatabase[dict[str, Any]], Commands],
) -> None:
    db, commands = counted
    notifier = Notifier(db, Router([], default=Targets(webhook=(HOOK,))))
    request = approval_request()
    assert await notifier.service.on_requested(request) == 1
    await notifier.settle()
    assert await db[REMINDERS].count_documents({}) == 1, "reminded at half the wait"

    commands.counting = True
    assert (
        await notifier.service.on_decided(approval_decision(request, at=request.requested_at)) == 1
    )
    commands.counting = False
    await notifier.settle()

    assert commands.seen[f"find {ASKED}"] == 1, "the questions sent are looked up"
    kinds = [d.kind for d in notifier.channels.sent]
    assert kinds == [NotificationKind.REQUESTED, NotificationKind.DECIDED]
    assert await db[REMINDERS].count_documents({}) == 0


async def test_an_escalation_that_brings_the_first_recipient_is_followed_up(
    counted: tuple[AsyncDatabase[dict[str, Any]], Commands],
) -> None:
    db, _ = counted
    # Nobody on the route until it escalates.
    route = Route(name="late", escalation=TargetsConfig(webhook=[HOOK]))
    notifier = Notifier(db, Router([route], default=Targets()))
    request = approval_request()
    assert await notifier.service.on_requested(request) == 0
    first = await notifier.store.state(request.correlation_id)
    assert first is not None
    assert not first.asked
    assert await db[REMINDERS].count_documents({}) == 0, "nobody to remind"

    escalated = request.model_copy(update={"escalated": True})
    assert await notifier.service.on_requested(escalated) == 1
    await notifier.settle()
    later = await notifier.store.state(request.correlation_id)
    assert later is not None
    assert later.asked, "marked asked before the claim"

    assert (
        await notifier.service.on_decided(approval_decision(request, at=request.requested_at)) == 1
    )
    await notifier.settle()
    kinds = [d.kind for d in notifier.channels.sent]
    assert kinds == [NotificationKind.ESCALATION, NotificationKind.DECIDED]


async def test_a_first_request_with_nobody_to_ask_cannot_silence_the_follow_up(
    counted: tuple[AsyncDatabase[dict[str, Any]], Commands],
) -> None:
    db, _ = counted
    # Anyone who can write to approval.requested could send a look-alike first, for an
    # agent no route covers, hoping the decision then updates nobody's messages.
    route = Route(name="banking", agents=["banking"], webhook=[HOOK])
    notifier = Notifier(db, Router([route], default=Targets()))
    real = approval_request()
    look_alike = real.model_copy(update={"agent": "nobody"})
    assert await notifier.service.on_requested(look_alike) == 0
    assert await notifier.service.on_requested(real) == 1
    await notifier.settle()
    state = await notifier.store.state(real.correlation_id)
    assert state is not None
    assert state.asked, "a request with recipients marks it asked; nothing unmarks it"

    assert await notifier.service.on_decided(approval_decision(real, at=real.requested_at)) == 1
    await notifier.settle()
    kinds = [d.kind for d in notifier.channels.sent]
    assert kinds == [NotificationKind.REQUESTED, NotificationKind.DECIDED]
