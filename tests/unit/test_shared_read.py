"""SharedRead: concurrent reads of a key share store calls and never return stale data."""

import asyncio

import pytest
from hitl_shared.shared_read import SharedRead


class Store:
    def __init__(self) -> None:
        self.value = 0
        self.calls = 0
        self.gate = asyncio.Event()

    async def read(self, key: str) -> tuple[str, int]:
        self.calls += 1
        seen = self.value  # the value when the read started
        await self.gate.wait()
        return key, seen


async def test_many_callers_during_one_read_share_the_next_one_which_sees_later_writes() -> None:
    store = Store()
    shared: SharedRead[str, tuple[str, int]] = SharedRead(store.read)
    first = asyncio.create_task(shared("a"))
    await asyncio.sleep(0)
    store.value = 1  # written after the first read started, before the others asked
    others = [asyncio.create_task(shared("a")) for _ in range(20)]
    await asyncio.sleep(0)
    assert store.calls == 1
    store.gate.set()
    assert await first == ("a", 0)
    assert {await o for o in others} == {("a", 1)}, "a read that started after they asked"
    assert store.calls == 2


async def test_keys_do_not_share_and_a_lone_caller_reads_at_once() -> None:
    store = Store()
    store.gate.set()
    shared: SharedRead[str, tuple[str, int]] = SharedRead(store.read)
    assert list(await asyncio.gather(shared("a"), shared("b"))) == [("a", 0), ("b", 0)]
    assert store.calls == 2
    assert await shared("a") == ("a", 0)
    assert store.calls == 3


async def test_a_failed_read_fails_its_waiters_and_the_next_caller_reads_again() -> None:
    calls = 0
    gate = asyncio.Event()

    async def read(key: str) -> int:
        nonlocal calls
        calls += 1
        await gate.wait()
        if calls <= 2:
            raise ConnectionError("store down")
        return calls

    shared: SharedRead[str, int] = SharedRead(read)
    first = asyncio.create_task(shared("a"))
    await asyncio.sleep(0)
    waiter = asyncio.create_task(shared("a"))
    await asyncio.sleep(0)
    gate.set()
    with pytest.raises(ConnectionError):
        await first
    with pytest.raises(ConnectionError):
        await waiter
    assert await shared("a") == 3


async def test_a_cancelled_waiter_does_not_cancel_the_read_of_the_others() -> None:
    store = Store()
    shared: SharedRead[str, tuple[str, int]] = SharedRead(store.read)
    first = asyncio.create_task(shared("a"))
    await asyncio.sleep(0)
    quitter = asyncio.create_task(shared("a"))
    stayer = asyncio.create_task(shared("a"))
    await asyncio.sleep(0)
    quitter.cancel()
    store.gate.set()
    await first
    assert await stayer == ("a", 0)
    with pytest.raises(asyncio.CancelledError):
        await quitter
