"""Throughput settings out of range stop start-up with the setting's name, before any
consumer starts: a commit interval of hours or a concurrency of zero is a mistake."""

import pytest
from hitl_notifier.settings import NotifierSettings
from pydantic import ValidationError


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("KAFKA_COMMIT_INTERVAL_MS", "-1"),
        ("KAFKA_COMMIT_INTERVAL_MS", "3600000"),
        ("KAFKA_COMMIT_INTERVAL_MS", "soon"),
        ("NOTIFIER_CONCURRENCY", "0"),
        ("NOTIFIER_CONCURRENCY", "100000"),
    ],
)
def test_out_of_range_throughput_settings_are_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as info:
        NotifierSettings()
    assert name.lower() in str(info.value)


def test_the_defaults_batch_commits_and_handle_approvals_at_once() -> None:
    settings = NotifierSettings()
    assert settings.kafka_commit_interval_ms == 100
    assert settings.notifier_concurrency == 16
