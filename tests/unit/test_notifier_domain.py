"""Pure notifier logic: routing, reminder time, back-off, delivery keys."""

import random
from datetime import UTC, datetime, timedelta

import pytest
from hitl_contracts import NotificationKind, RiskLevel
from hitl_notifier.domain.deliveries import Delivery, Target
from hitl_notifier.domain.notice import time_left
from hitl_notifier.domain.routing import Route, Router, Targets
from hitl_notifier.domain.schedule import backoff, remind_at
from hitl_notifier.settings import NotifierSettings

from tests.support.notifier import request

DEFAULT = Targets(webhook=("https://hooks.example/all",))
ROUTES = [
    Route(name="crit", risk_levels=[RiskLevel.CRITICAL], slack=["C_ONCALL"], email=["oncall@x"]),
    Route(
        name="files",
        agents=["files"],
        tools=["delete_files"],
        slack=["C_FILES"],
        escalation={"email": ["boss@x"]},
    ),
    Route(name="low", risk_levels=[RiskLevel.LOW], webhook=["https://hooks.example/low"]),
]


def test_first_matching_route_wins_and_unmatched_requests_take_the_default() -> None:
    router = Router(ROUTES, default=DEFAULT)
    critical = router.targets(request(risk=RiskLevel.CRITICAL, agent="files", tool="delete_files"))
    assert list(critical) == [Target("slack", "C_ONCALL"), Target("email", "oncall@x")]
    low = router.targets(request(risk=RiskLevel.LOW))
    assert list(low) == [Target("webhook", "https://hooks.example/low")]
    assert router.targets(request(risk=RiskLevel.HIGH)) == DEFAULT


def test_every_criterion_of_a_route_must_match() -> None:
    router = Router(ROUTES, default=DEFAULT)
    assert router.route_for(request(agent="files", tool="list_files")) is None
    route = router.route_for(request(agent="files", tool="delete_files"))
    assert route is not None
    assert route.name == "files"


def test_escalation_uses_the_routes_escalation_targets_or_its_own() -> None:
    router = Router(ROUTES, default=DEFAULT)
    files = request(agent="files", tool="delete_files")
    assert list(router.targets(files, escalation=True)) == [Target("email", "boss@x")]
    crit = request(risk=RiskLevel.CRITICAL)
    assert router.targets(crit, escalation=True) == router.targets(crit)


def test_duplicate_recipients_are_notified_once() -> None:
    targets = Targets(email=("a@x", "a@x", "b@x"))
    assert list(targets) == [Target("email", "a@x"), Target("email", "b@x")]


def test_routes_come_from_json_settings_and_reject_unknown_keys() -> None:
    settings = NotifierSettings(
        notifier_routes='[{"name": "r", "tools": ["transfer"], "slack": ["C1"]}]',
        notifier_email_to="a@x, b@x",
    )
    router = settings.router()
    assert list(router.targets(request(tool="transfer"))) == [Target("slack", "C1")]
    assert list(router.targets(request(tool="other"))) == [
        Target("email", "a@x"),
        Target("email", "b@x"),
    ]
    with pytest.raises(ValueError, match="chanels"):
        NotifierSettings(notifier_routes='[{"chanels": ["C1"]}]').router()


def test_production_refuses_development_secrets() -> None:
    with pytest.raises(ValueError, match="HITL_LINK_SECRET"):
        NotifierSettings(hitl_env="production", kafka_allow_insecure=True)
    with pytest.raises(ValueError, match="NOTIFIER_WEBHOOK_SECRET"):
        NotifierSettings(
            hitl_env="production",
            kafka_allow_insecure=True,
            hitl_link_secret="s" * 32,
            notifier_webhook_urls="https://h",
        )
    with pytest.raises(ValueError, match="NOTIFIER_SLACK_BOT_TOKEN"):
        NotifierSettings(
            hitl_env="production",
            kafka_allow_insecure=True,
            hitl_link_secret="s" * 32,
            notifier_slack_channels="C1",
        )
    NotifierSettings(hitl_env="production", kafka_allow_insecure=True, hitl_link_secret="s" * 32)


def test_reminder_is_due_at_the_configured_fraction_of_the_wait() -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    end = start + timedelta(minutes=30)
    assert remind_at(start, end, 0.5) == start + timedelta(minutes=15)
    assert remind_at(start, end, 0.8) == start + timedelta(minutes=24)
    assert remind_at(start, end, 0) is None, "0 turns reminders off"
    assert remind_at(start, start, 0.5) is None


def test_backoff_grows_exponentially_with_bounded_jitter() -> None:
    rng = random.Random(7)
    delays = [backoff(n, base=0.5, cap=8.0, rng=rng) for n in range(1, 7)]
    for n, delay in enumerate(delays, start=1):
        ceiling = min(8.0, 0.5 * 2 ** (n - 1))
        assert ceiling / 2 <= delay <= ceiling
    assert delays[-1] <= 8.0
    spread = {round(backoff(3, base=0.5, cap=8.0, rng=rng), 6) for _ in range(20)}
    assert len(spread) > 1, "jitter spreads retries"


def test_delivery_keys_separate_kinds_channels_recipients_and_updated_messages() -> None:
    base = Delivery("c1", "r1", NotificationKind.REQUESTED, Target("slack", "C1"))
    same = Delivery("c1", "r1", NotificationKind.REQUESTED, Target("slack", "C1"))
    assert base.key == same.key
    others = [
        Delivery("c1", "r1", NotificationKind.REMINDER, Target("slack", "C1")),
        Delivery("c1", "r1", NotificationKind.REQUESTED, Target("slack", "C2")),
        Delivery("c1", "r1", NotificationKind.REQUESTED, Target("email", "C1")),
        Delivery("c1", "r1", NotificationKind.DECIDED, Target("slack", "C1"), updates="C1|1.0"),
        Delivery("c1", "r1", NotificationKind.DECIDED, Target("slack", "C1"), updates="C1|2.0"),
    ]
    assert len({base.key, *(o.key for o in others)}) == 6


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (-1, "expired"),
        (42, "42 seconds"),
        (1800, "30 minutes"),
        (7200, "2 hours"),
        (259200, "3 days"),
    ],
)
def test_time_left_reads_naturally(seconds: int, text: str) -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert time_left(now, now + timedelta(seconds=seconds)) == text
