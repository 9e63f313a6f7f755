"""The dispatcher's retry rules with fakes of the store, channels and outcome topic."""

import random
from datetime import UTC, datetime, timedelta

from hitl_contracts import NotificationKind
from hitl_notifier.channels.errors import DeliveryError
from hitl_notifier.domain.deliveries import ApprovalState, Delivery, Target
from hitl_notifier.domain.notice import Notice
from hitl_notifier.service_layer.channels import Channels
from hitl_notifier.service_layer.dispatcher import Dispatcher, RetryPolicy

from tests.fakes import CollectingOutcomes, FakeDeliveryStore
from tests.support.notifier import request

NOW = datetime(2026, 3, 1, tzinfo=UTC)


class ScriptedChannels(Channels):
    def __init__(self, *outcomes: Exception | str) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0

    async def send(self, delivery: Delivery, notice: Notice) -> str:
        self.calls += 1
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


def build(
    *outcomes: Exception | str, max_seconds: float = 0.002
) -> tuple[Dispatcher, FakeDeliveryStore, ScriptedChannels, CollectingOutcomes]:
    req = request()
    store = FakeDeliveryStore(ApprovalState(req.correlation_id, req, None))
    channels = ScriptedChannels(*outcomes)
    published = CollectingOutcomes()
    dispatcher = Dispatcher(
        store,
        channels,
        published,
        policy=RetryPolicy(
            attempts=4, base_seconds=0.001, max_seconds=max_seconds, lease=timedelta(seconds=5)
        ),
        clock=lambda: NOW,
        link_for=lambda cid: f"https://x/{cid}",
        rng=random.Random(1),
    )
    return dispatcher, store, channels, published


def delivery(dispatcher: Dispatcher, store: FakeDeliveryStore) -> Delivery:
    assert store.known.request is not None
    return Delivery(
        store.known.correlation_id,
        store.known.request.run_id,
        NotificationKind.REQUESTED,
        Target("slack", "C1"),
    )


async def test_transient_failures_are_retried_until_sent() -> None:
    dispatcher, store, channels, published = build(
        DeliveryError("HTTP 500"), DeliveryError("timeout"), "C1|1.0"
    )
    await dispatcher.run(delivery(dispatcher, store))
    assert channels.calls == 3
    assert store.attempts == [1, 2]
    assert store.finished[-1]["status"] == "sent"
    assert store.finished[-1]["message_ref"] == "C1|1.0"
    (event,) = published.recorded_events
    assert (event.status, event.attempts, event.message_ref) == ("sent", 3, "C1|1.0")
    assert published.dead == []


async def test_the_last_failure_is_recorded_and_dead_lettered() -> None:
    dispatcher, store, channels, published = build(*[DeliveryError("HTTP 503")] * 4)
    await dispatcher.run(delivery(dispatcher, store))
    assert channels.calls == 4
    assert store.finished[-1]["status"] == "failed"
    (event,) = published.recorded_events
    assert (event.status, event.attempts, event.error) == ("failed", 4, "HTTP 503")
    (letter,) = published.dead
    assert letter.recipient == "C1"
    assert letter.payload["request"]["correlation_id"] == store.known.correlation_id


async def test_a_permanent_error_is_not_retried() -> None:
    dispatcher, store, channels, published = build(
        DeliveryError("Slack chat.postMessage: channel_not_found", permanent=True), "never"
    )
    await dispatcher.run(delivery(dispatcher, store))
    assert channels.calls == 1
    (event,) = published.recorded_events
    assert (event.status, event.attempts) == ("failed", 1)
    assert "channel_not_found" in published.dead[0].error


async def test_a_message_that_cannot_be_built_fails_once_and_is_dead_lettered() -> None:
    # e.g. the email library refusing a header with a line break (header injection).
    injected = ValueError("Header values may not contain linefeed or carriage return characters")
    dispatcher, store, channels, published = build(injected, "never")
    await dispatcher.run(delivery(dispatcher, store))
    assert channels.calls == 1
    assert store.finished[-1]["status"] == "failed"
    (event,) = published.recorded_events
    assert (event.status, event.attempts) == ("failed", 1)
    assert "linefeed" in published.dead[0].error


async def test_a_resumed_delivery_continues_its_attempt_count() -> None:
    dispatcher, store, channels, published = build(DeliveryError("HTTP 500"), "ok")
    await dispatcher.run(delivery(dispatcher, store), attempts_done=2)
    assert channels.calls == 2
    assert published.recorded_events[0].attempts == 4


async def test_a_servers_retry_after_is_honoured_up_to_the_cap() -> None:
    dispatcher, store, channels, _ = build(
        DeliveryError("Slack chat.postMessage: rate limited", retry_after=0.05),
        "ok",
        max_seconds=1.0,
    )
    await dispatcher.run(delivery(dispatcher, store))
    assert channels.calls == 2
    waited = store.leases[0] - NOW - dispatcher.policy.lease
    assert waited >= timedelta(seconds=0.05)
