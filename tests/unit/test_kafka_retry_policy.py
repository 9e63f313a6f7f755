"""The consumers' retry policy: the health probe, not the exception, says whose fault."""

from collections.abc import Awaitable, Callable

import pytest
from hitl_contracts import TaskSubmitted
from hitl_shared.http_limits import Unavailable
from hitl_shared.kafka import HANDLER_ATTEMPTS, PoisonMessage, _attempt
from pydantic import ValidationError
from pymongo.errors import AutoReconnect


def failing(exc: Exception, calls: list[int]) -> Callable[[], Awaitable[None]]:
    async def call() -> None:
        calls.append(1)
        raise exc

    return call


async def up() -> bool:
    return True


async def down() -> bool:
    return False


def validation_error() -> ValidationError:
    try:
        TaskSubmitted.model_validate({"task_id": "t", "input": ""})
    except ValidationError as exc:
        return exc
    raise AssertionError("expected a validation error")


@pytest.mark.parametrize(
    "exc",
    [PoisonMessage("no such agent"), validation_error(), OverflowError("date value out of range")],
)
async def test_the_message_s_fault_by_type_is_dead_lettered_at_once(exc: Exception) -> None:
    calls: list[int] = []
    assert await _attempt(failing(exc, calls), "t", healthy=down) is exc
    assert len(calls) == 1, "no retry, no matter the store's health"


async def test_any_failure_with_store_and_broker_up_is_dead_lettered_after_the_tries() -> None:
    calls: list[int] = []
    exc = AutoReconnect("connection closed")
    assert await _attempt(failing(exc, calls), "t", healthy=up) is exc
    assert len(calls) == HANDLER_ATTEMPTS


async def test_a_failure_during_an_outage_is_raised_for_redelivery() -> None:
    calls: list[int] = []
    with pytest.raises(AutoReconnect):
        await _attempt(failing(AutoReconnect("down"), calls), "t", healthy=down)
    assert len(calls) == HANDLER_ATTEMPTS


async def test_unavailable_is_an_outage_even_when_the_store_answers() -> None:
    calls: list[int] = []
    with pytest.raises(Unavailable):
        await _attempt(failing(Unavailable("keys"), calls), "t", healthy=up)


async def test_a_handler_that_recovers_succeeds() -> None:
    calls: list[int] = []

    async def flaky() -> None:
        calls.append(1)
        if len(calls) < 2:
            raise RuntimeError("once")

    assert await _attempt(flaky, "t", healthy=up) is None
    assert len(calls) == 2
