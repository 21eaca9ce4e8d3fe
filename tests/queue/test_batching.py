"""The Coalescer that lets concurrent callers share Redis round trips: who goes in which batch, and
what each caller gets back when a batch fails or the process stops. Its `send` here is a plain function
that records its batches (the Redis side is covered by the queue tests and tests/cluster)."""

from __future__ import annotations

import asyncio

import pytest

from service.queue.batching import Coalescer


class Recorder:
    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.fail_next = False

    async def send(self, items: list[int]) -> list[int]:
        self.batches.append(items)
        await self.release.wait()
        if self.fail_next:
            self.fail_next = False
            raise ValueError(f"batch {items} failed")
        return [item * 10 for item in items]


async def held_batch(item: int) -> tuple[Recorder, Coalescer[int, int], asyncio.Task[list[int]]]:
    """A coalescer whose first batch, of `item` alone, is out and held until `recorder.release` is set."""
    recorder = Recorder()
    recorder.release.clear()
    batches = Coalescer(recorder.send, "test")
    first = asyncio.create_task(batches.submit_many([item]))
    while not recorder.batches:
        await asyncio.sleep(0)
    return recorder, batches, first


async def test_callers_of_the_same_moment_share_one_batch_and_get_their_own_answers() -> None:
    recorder = Recorder()
    batches = Coalescer(recorder.send, "test")
    answers = await asyncio.gather(*(batches.submit_many([i]) for i in range(5)), batches.submit_many([5, 6]))
    assert answers == [[0], [10], [20], [30], [40], [50, 60]]
    assert recorder.batches == [[0, 1, 2, 3, 4, 5, 6]]


async def test_callers_arriving_while_a_batch_is_out_go_together_in_the_next() -> None:
    recorder, batches, first = await held_batch(1)
    later = [asyncio.create_task(batches.submit_many([i])) for i in (2, 3, 4)]
    await asyncio.sleep(0.01)
    assert recorder.batches == [[1]]  # one batch at a time
    recorder.release.set()
    assert await first == [10]
    assert [await task for task in later] == [[20], [30], [40]]
    assert recorder.batches == [[1], [2, 3, 4]]


async def test_a_failed_batch_fails_each_of_its_callers_and_the_next_batch_still_goes() -> None:
    recorder = Recorder()
    recorder.release.clear()
    recorder.fail_next = True
    batches = Coalescer(recorder.send, "test")
    doomed = [asyncio.create_task(batches.submit_many([i])) for i in (1, 2)]
    while not recorder.batches:
        await asyncio.sleep(0)
    survivor = asyncio.create_task(batches.submit_many([3]))
    await asyncio.sleep(0)
    recorder.release.set()
    for task in doomed:
        with pytest.raises(ValueError, match=r"batch \[1, 2\] failed"):
            await task
    assert await survivor == [30]


async def test_a_caller_that_gives_up_leaves_the_others_their_answers() -> None:
    recorder = Recorder()
    recorder.release.clear()
    batches = Coalescer(recorder.send, "test")
    quitter = asyncio.create_task(batches.submit_many([1]))
    stayer = asyncio.create_task(batches.submit_many([2]))
    while not recorder.batches:
        await asyncio.sleep(0)
    quitter.cancel()
    recorder.release.set()
    assert await stayer == [20]
    assert quitter.cancelled()


async def test_stopping_the_sender_cancels_everyone_still_waiting() -> None:
    _, batches, out = await held_batch(1)
    queued = asyncio.create_task(batches.submit_many([2]))
    await asyncio.sleep(0)
    assert batches._sending is not None
    batches._sending.cancel()
    for task in (out, queued):
        with pytest.raises(asyncio.CancelledError):
            await task
