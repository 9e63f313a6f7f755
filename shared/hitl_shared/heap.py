"""The services' Python heap: what start-up built is frozen, and collected less often.

CPython's cyclic collector walks every tracked object of a generation when it runs. A
service's start-up leaves hundreds of thousands of long-lived objects (FastAPI,
pydantic's validators, the openai and pymongo clients) in the oldest generation, and
each full collection walked all of them again: measured in the agent at 50 decisions/s,
12 full collections took 1.0 s together, the longest 136 ms, a pause of the event loop
during which every decision in flight waits. `gc.freeze()` once start-up is done moves
those objects to a permanent generation the collector no longer walks; the thresholds
then set how many allocations start a young collection (CPython 3.11 and 3.12's 700
ran one every few milliseconds under load; 3.13's own is 2,000).
"""

import gc
import logging

log = logging.getLogger(__name__)

# Allocations (net of deallocations) of tracked objects that start a young collection,
# and how many young (then middle) collections start the next older one.
DEFAULT_THRESHOLDS = (2_000, 10, 10)


def parse_thresholds(value: str) -> tuple[int, int, int] | None:
    """`HITL_GC_THRESHOLDS`: "default" (or empty), "off" (CPython's own, nothing frozen), or three numbers."""
    value = value.strip().lower()
    if value in ("", "default"):
        return DEFAULT_THRESHOLDS
    if value == "off":
        return None
    parts = value.replace(" ", "").split(",")
    if len(parts) != 3 or not all(p.isascii() and p.isdigit() for p in parts):
        raise ValueError(
            f"HITL_GC_THRESHOLDS must be 'default', 'off' or three whole numbers like 2000,10,10; "
            f"got {value!r}"
        )
    first, second, third = (int(p) for p in parts)
    if not (100 <= first <= 1_000_000 and 1 <= second <= 1_000 and 1 <= third <= 1_000):
        raise ValueError(
            "HITL_GC_THRESHOLDS: the first number must be 100..1000000, the others 1..1000; "
            f"got {value!r}"
        )
    return first, second, third


def settle(thresholds: tuple[int, int, int] | None) -> None:
    """Once start-up is done: collect, freeze what is left, set the thresholds."""
    if thresholds is None:
        return
    gc.collect()
    gc.freeze()
    gc.set_threshold(*thresholds)
    log.info(
        "heap settled: %d start-up objects frozen, collection thresholds %s",
        gc.get_freeze_count(),
        ",".join(map(str, thresholds)),
    )
