"""The slow store command log names the command, collection and filter fields, never values."""

import logging
from typing import Any

import pytest
from bson import SON
from hitl_shared.slow_commands import SlowCommands, describe


def test_describe_names_fields_not_values() -> None:
    command = SON(
        [
            ("find", "approvals_archive"),
            ("filter", {"correlation_id": "secret-id", "$or": [{"a": 1}, {"b": 2}]}),
        ]
    )
    assert describe(command) == "find on approvals_archive {correlation_id, a, b}"
    assert "secret-id" not in describe(command)


def test_describe_updates_and_deletes() -> None:
    update = SON(
        [("update", "runs"), ("updates", [{"q": {"_id": "r1", "seq": {"$lt": 3}}, "u": {}}])]
    )
    assert describe(update) == "update on runs {_id, seq}"
    delete = SON([("delete", "keys"), ("deletes", [{"q": {"at": {"$lt": 1}}, "limit": 0}])])
    assert describe(delete) == "delete on keys {at}"
    assert describe(SON([("ping", 1)])) == "ping"


class _Event:
    def __init__(self, command: Any = None, micros: int = 0) -> None:
        self.connection_id = ("127.0.0.1", 27017)
        self.request_id = 7
        self.command = command
        self.duration_micros = micros


def test_only_commands_over_the_threshold_are_logged(caplog: pytest.LogCaptureFixture) -> None:
    listener = SlowCommands(threshold_ms=50)
    caplog.set_level(logging.WARNING, logger="hitl.store.slow")
    listener.started(_Event(SON([("find", "runs"), ("filter", {"status": "x"})])))  # type: ignore[arg-type]
    listener.succeeded(_Event(micros=10_000))  # type: ignore[arg-type]
    assert caplog.records == []
    listener.started(_Event(SON([("find", "runs"), ("filter", {"status": "x"})])))  # type: ignore[arg-type]
    listener.succeeded(_Event(micros=80_000))  # type: ignore[arg-type]
    assert [r.getMessage() for r in caplog.records] == [
        "slow store command: find on runs {status} took 80 ms"
    ]
