"""The services' heap settings: parsed strictly, applied once start-up completed."""

import gc
from collections.abc import Iterator
from typing import Any

import pytest
from hitl_shared import heap
from hitl_shared.serve import settled_after_startup


@pytest.fixture
def restored_gc() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*before)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("default", heap.DEFAULT_THRESHOLDS),
        ("", heap.DEFAULT_THRESHOLDS),
        ("off", None),
        (" OFF ", None),
        ("700,10,10", (700, 10, 10)),
        ("50000, 20, 100", (50_000, 20, 100)),
    ],
)
def test_thresholds_parse(value: str, expected: tuple[int, int, int] | None) -> None:
    assert heap.parse_thresholds(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        "on",
        "\u00b2,10,10",
        "1,2",
        "1,2,3,4",
        "-700,10,10",
        "700,0,10",
        "99,10,10",
        "7e2,10,10",
        "700;rm,1,1",
    ],
)
def test_bad_thresholds_are_refused_by_name(value: str) -> None:
    with pytest.raises(ValueError, match="HITL_GC_THRESHOLDS"):
        heap.parse_thresholds(value)


async def _lifespan_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.complete"})
    else:
        await send({"type": "http.response.start", "status": 204})


async def test_the_heap_settles_when_start_up_completed_not_before(restored_gc: None) -> None:
    gc.unfreeze()
    app = settled_after_startup(_lifespan_app, (12_345, 11, 12))
    seen: list[tuple[str, int, tuple[int, int, int]]] = []

    async def receive() -> dict[str, Any]:
        assert gc.get_freeze_count() == 0, "settled before start-up completed"
        return {"type": "lifespan.startup"}

    async def send(message: dict[str, Any]) -> None:
        seen.append((message["type"], gc.get_freeze_count(), gc.get_threshold()))

    await app({"type": "lifespan"}, receive, send)
    ((kind, frozen, thresholds),) = seen
    assert kind == "lifespan.startup.complete"
    assert frozen > 0
    assert thresholds == (12_345, 11, 12)


async def test_requests_pass_through_and_off_changes_nothing(restored_gc: None) -> None:
    gc.unfreeze()
    before = gc.get_threshold()
    assert settled_after_startup(_lifespan_app, None) is _lifespan_app
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {}

    await settled_after_startup(_lifespan_app, (1_000, 10, 10))({"type": "http"}, receive, send)
    assert sent == [{"type": "http.response.start", "status": 204}]
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == before
