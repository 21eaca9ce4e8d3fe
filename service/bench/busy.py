"""The pool held busy before a hold opens its calls: every sandbox slot running a call that sleeps.

In RL a step's calls often arrive while the pool is still running long calls. `count_slots` reads how
many sandbox slots the live workers have from the gateway's `/metrics` (the `sandpit_slots` gauge,
which the gateway samples from the workers' heartbeats in Redis, so it reads nothing for a few
seconds after a start); `keep_busy` sends that many calls that sleep, more if the gauge then still
shows slots free (a worker counted late), and returns once it shows every slot busy. Calls sent from
then on wait in the queue until the sleeping calls end, so none is answered while a load generator is
still opening connections.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from service.bench import workloads
from service.bench.load import Outcome, Pool, call_once, open_pool

METRICS = "/metrics"
SLOTS_GAUGE = "sandpit_slots"
# The gauge trails the pool by a worker's heartbeat (2 s) and the gateway's sampling (5 s by default).
SLOTS_WAIT_MAX_S = 30.0
POLL_S = 0.25
METRICS_TIMEOUT_S = 10.0


def slots_by_state(text: str) -> dict[str, float]:
    """The `sandpit_slots` gauge of a Prometheus text exposition, by state (`busy`, `free`)."""
    return {
        sample.labels.get("state", ""): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == SLOTS_GAUGE
    }


async def read_slots(pool: Pool) -> dict[str, float]:
    text = await pool.get_text(METRICS)
    return {} if text is None else slots_by_state(text)


async def count_slots(url: str) -> int:
    """The sandbox slots of the live workers, busy and free, once the gateway has sampled them."""
    async with open_pool(url, 1, METRICS_TIMEOUT_S) as pool:
        deadline = time.monotonic() + SLOTS_WAIT_MAX_S
        while time.monotonic() < deadline:
            slots = int(sum((await read_slots(pool)).values()))
            if slots:
                return slots
            await asyncio.sleep(POLL_S)
    raise SystemExit(
        f"hold: {url}{METRICS} showed no sandbox slots ({SLOTS_GAUGE}) within {SLOTS_WAIT_MAX_S:g} s: no live"
        " worker, or no metrics there; --hold-busy-s 0 holds without keeping the pool busy first"
    )


@dataclass
class BusyCalls:
    """The sleeping calls: how long each sleeps, how many were sent, how they were answered."""

    seconds: float
    sent: int = 0
    outcome: Outcome = field(default_factory=Outcome)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    # From sending the first of them to the gauge showing every slot busy.
    filled_in_s: float | None = None
    # time.monotonic() of the first answer: from then on the pool takes other calls.
    first_answer_at: float | None = None

    def asleep_at(self, moment: float) -> bool | None:
        """Whether every sleeping call was still unanswered at `moment` (None when there were none)."""
        if not self.sent:
            return None
        return self.first_answer_at is None or self.first_answer_at > moment

    def check_still_asleep(self) -> None:
        if self.outcome.errors:
            kind, example = next(iter(self.outcome.examples.items()))
            raise SystemExit(f"hold: a call keeping the pool busy was answered {kind}: {example}")
        if self.first_answer_at is not None:
            raise SystemExit(
                f"hold: the calls keeping the pool busy ended before {METRICS} showed every slot busy:"
                f" {self.seconds:g} s (--hold-busy-s) is too short"
            )


class Sleepers:
    """Sends the sleeping calls, each lot on connections of its own, and records their answers."""

    def __init__(self, url: str, busy: BusyCalls, pools: AsyncExitStack, request_timeout_s: float) -> None:
        self.url, self.busy, self.pools, self.request_timeout_s = url, busy, pools, request_timeout_s
        self.workload = workloads.asleep(busy.seconds)

    async def send(self, count: int) -> None:
        pool = await self.pools.enter_async_context(open_pool(self.url, count, self.request_timeout_s))
        first = self.busy.sent
        self.busy.tasks += [asyncio.create_task(self.call(pool, first + index)) for index in range(count)]
        self.busy.sent += count

    async def call(self, pool: Pool, index: int) -> None:
        self.busy.outcome.record(*await call_once(pool, index, self.workload))
        if self.busy.first_answer_at is None:
            self.busy.first_answer_at = time.monotonic()


async def fill_every_slot(metrics: Pool, sleepers: Sleepers) -> None:
    """Wait until the gauge counts every call sent as busy and no slot free. A worker that had not yet
    sent its first heartbeat when the slots were counted shows up free: it gets sleeping calls too."""
    busy = sleepers.busy
    deadline = time.monotonic() + SLOTS_WAIT_MAX_S
    while time.monotonic() < deadline:
        busy.check_still_asleep()
        slots = await read_slots(metrics)
        if slots.get("busy", 0.0) >= busy.sent:
            free = int(slots.get("free", 0.0))
            if not free:
                return
            await sleepers.send(free)
        await asyncio.sleep(POLL_S)
    raise SystemExit(f"hold: {METRICS} did not show {busy.sent} slots busy and none free within {SLOTS_WAIT_MAX_S:g} s")


@asynccontextmanager
async def keep_busy(url: str, slots: int, seconds: float, request_timeout_s: float) -> AsyncIterator[BusyCalls]:
    """Calls asleep for `seconds` in every slot (`slots` at first), all running on entry; on leaving,
    each has its answer."""
    busy = BusyCalls(seconds)
    if not slots:
        yield busy
        return
    async with AsyncExitStack() as pools:
        metrics = await pools.enter_async_context(open_pool(url, 1, METRICS_TIMEOUT_S))
        sleepers = Sleepers(url, busy, pools, request_timeout_s)
        start = time.monotonic()
        await sleepers.send(slots)
        try:
            await fill_every_slot(metrics, sleepers)
            busy.filled_in_s = round(time.monotonic() - start, 1)
            yield busy
            await asyncio.wait(busy.tasks)
        finally:
            for task in busy.tasks:
                task.cancel()
            await asyncio.gather(*busy.tasks, return_exceptions=True)
