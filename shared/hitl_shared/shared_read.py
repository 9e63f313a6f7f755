"""Concurrent reads of one key share a store call, without reading anything stale.

Every step boundary of every run reads its agent's halt flag. With many runs in flight
those reads pile up on the same document; here they share calls: a caller that asks
while a read of its key is in flight waits for the *next* read, which starts after
that one ends (so after the caller asked: it sees every write that preceded its call,
as a read of its own would). However many callers, at most one read per key is in
flight and one more is waited for.
"""

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SharedRead(Generic[K, V]):
    def __init__(self, read: Callable[[K], Awaitable[V]]) -> None:
        self.read = read
        self.running: set[K] = set()
        # Callers that came while a read of their key was running: the next read's.
        self.waiting: dict[K, asyncio.Future[V]] = {}
        self.tasks: set[asyncio.Task[None]] = set()

    async def __call__(self, key: K) -> V:
        if key in self.running:
            future = self.waiting.get(key)
            if future is None:
                future = self.waiting[key] = asyncio.get_running_loop().create_future()
                # Retrieved even when every waiter was cancelled (no "never retrieved").
                future.add_done_callback(lambda f: f.cancelled() or f.exception())
            # Shielded: one caller cancelled does not cancel the read for the others.
            return await asyncio.shield(future)
        return await self._run(key)

    async def _run(self, key: K) -> V:
        self.running.add(key)
        try:
            return await self.read(key)
        finally:
            self.running.discard(key)
            if (future := self.waiting.pop(key, None)) is not None:
                task = asyncio.create_task(self._serve(key, future))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)

    async def _serve(self, key: K, future: "asyncio.Future[V]") -> None:
        try:
            result = await self._run(key)
        except BaseException as exc:  # the waiters get what a read of their own would
            if not future.done():
                future.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            if not future.done():
                future.set_result(result)
