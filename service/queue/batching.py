"""Sharing Redis round trips between concurrent callers of one process.

Round trips, not commands, are most of what Redis spends per call (a read, a write and an event-loop
turn each). A `Coalescer` sends what its callers hand it in batches, one batch at a time: items handed
over in the same turn of the event loop, or while the previous batch was on its way, go together in the
next one. An idle process adds no delay (its batch leaves on the next turn); a busy one sends fewer,
larger round trips, and waits at most one round trip longer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Coalescer(Generic[T, R]):
    """Runs `send` on batches of the items given to `submit`; each caller gets its own item's answer.

    `send` returns one answer per item, in order. If it raises, every caller of that batch gets the
    exception; the next batch is sent all the same."""

    def __init__(self, send: Callable[[list[T]], Awaitable[list[R]]], name: str) -> None:
        self._send = send
        self._name = name
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._batch: list[tuple[T, asyncio.Future[R]]] = []
        self._sending: asyncio.Task[None] | None = None

    async def submit_many(self, items: list[T]) -> list[R]:
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in items]
        self._pending += zip(items, futures, strict=True)
        if self._sending is None or self._sending.done():
            self._sending = asyncio.create_task(self._send_all(), name=self._name)
        if len(futures) == 1:
            # The usual caller's one item: its future awaited as it is, without a gathering future.
            return [await futures[0]]
        return list(await asyncio.gather(*futures))

    async def _send_all(self) -> None:
        try:
            while self._pending:
                # One turn of the loop for the other callers of this moment to join the batch.
                await asyncio.sleep(0)
                self._batch, self._pending = self._pending, []
                try:
                    answers = await self._send([item for item, _ in self._batch])
                except Exception as exc:
                    for _, future in self._batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                for (_, future), answer in zip(self._batch, answers, strict=True):
                    if not future.done():
                        future.set_result(answer)
        except BaseException:
            # Cancelled (the process is stopping): no batch will be sent for those still waiting.
            for _, future in self._batch + self._pending:
                future.cancel()
            self._pending = []
            raise
        finally:
            self._batch = []
