"""Event contracts: validation, versioning, wire format."""

import pytest
from hitl_contracts import TaskSubmitted
from hitl_shared.kafka import parse
from pydantic import ValidationError


def test_event_round_trips_with_envelope_fields() -> None:
    task = TaskSubmitted(task_id="t1", input="Transfer 50 to Bob")
    again = TaskSubmitted.model_validate_json(task.model_dump_json())
    assert again == task
    assert again.occurred_at.tzinfo is not None
    assert again.agent == ""  # no default agent in the contract: the deployment's default


def test_future_schema_version_is_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="schema_version 2 is newer"):
        parse(TaskSubmitted, b'{"task_id": "t", "input": "x", "schema_version": 2}')


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "Invalid JSON"),
        (b'{"input": "x"}', "task_id: Field required"),
        (b'{"task_id": 5, "input": "x"}', "task_id: Input should be a valid string"),
    ],
)
def test_malformed_bodies_get_a_readable_reason(body: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        parse(TaskSubmitted, body)


def test_oversized_event_is_refused_before_parsing() -> None:
    with pytest.raises(ValueError, match="exceeds"):
        parse(TaskSubmitted, b" " * (2 * 1024 * 1024))


def test_events_are_frozen() -> None:
    task = TaskSubmitted(task_id="t1", input="x")
    with pytest.raises(ValidationError):
        task.input = "y"  # type: ignore[misc]
