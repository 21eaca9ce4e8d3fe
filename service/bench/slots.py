"""What a sandbox slot costs in memory: the figures `docs/reliability.md` sizes workers by.

Starts one worker's sandbox (the warm zygotes, as a worker does), then measures the proportional set
size (PSS) of every process running as the sandbox uid: idle; after `SLOTS` slots have each run a
plain call (their lean namespaces made); after they have each run a numpy/sympy call (heavy ones
too); and while `SLOTS` looping calls run, lean and then heavy. Prints one JSON line. Run as root
(the sandbox uid is then its own); loopback-free, bounded (a few seconds per phase).

    python -m service.bench.slots
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from pathlib import Path

import orjson

from service.config import Settings
from service.gateway.limits import resolve_limits
from service.models import ExecuteRequest, Job
from service.sandbox.executor import Sandbox

SLOTS = 100
# Not a uid any other worker on this host runs its sandboxes as.
UID = 64000
SETTLE_S = 1.0


def job(code: str, timeout_s: float = 10.0, memory_mb: int | None = None, stdin: str = "") -> Job:
    """A Python job handed straight to a `Sandbox`, with the limits the gateway would resolve for it."""
    request = ExecuteRequest(language="python", code=code, timeout_s=timeout_s, memory_mb=memory_mb, stdin=stdin)
    limits = resolve_limits(request, Settings())
    return Job(id=uuid.uuid4().hex, request=request, limits=limits, enqueued_at=time.time(), start_by=time.time() + 60)


def sandbox_pss_mb() -> tuple[int, float]:
    """(processes, their total PSS in MB) of the sandbox uid."""
    processes, kilobytes = 0, 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if entry.stat().st_uid != UID:
                continue
            for line in (entry / "smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    kilobytes += int(line.split()[1])
                    processes += 1
        except OSError:
            continue
    return processes, round(kilobytes / 1024, 1)


async def measure() -> dict[str, object]:
    sandbox = Sandbox(Settings(worker_concurrency=SLOTS, sandbox_uid_base=UID))
    sandbox.check()
    await sandbox.start()
    figures: dict[str, object] = {"slots": SLOTS}

    async def phase(name: str, code: str | None, timeout_s: float = 10.0) -> None:
        running = []
        if code is not None:
            running = [asyncio.create_task(sandbox.execute(job(code, timeout_s), slot)) for slot in range(SLOTS)]
            if timeout_s > SETTLE_S * 2:
                await asyncio.gather(*running)
                running = []
        await asyncio.sleep(SETTLE_S)
        processes, pss = sandbox_pss_mb()
        figures[name] = {"processes": processes, "pss_mb": pss}
        await asyncio.gather(*running)

    try:
        await phase("idle", None)
        await phase("lean_slots_warm", "print(1)")
        await phase("lean_and_heavy_slots_warm", "import numpy, sympy\nprint(1)")
        await phase("lean_loops_running", "while True:\n    pass", timeout_s=2 * SETTLE_S)
        await phase("heavy_loops_running", "import numpy\nwhile True:\n    pass", timeout_s=2 * SETTLE_S)
    finally:
        await sandbox.aclose()
    idle = figures["idle"]["pss_mb"]  # type: ignore[index]
    per_slot = {
        name: round((figures[name]["pss_mb"] - idle) / SLOTS, 2)  # type: ignore[index]
        for name in ("lean_slots_warm", "lean_and_heavy_slots_warm", "lean_loops_running", "heavy_loops_running")
    }
    figures["mb_per_slot"] = per_slot
    return figures


def main() -> None:
    if os.geteuid() != 0:
        raise SystemExit("run as root: the sandbox's processes are counted by their own uid")
    print(orjson.dumps(asyncio.run(measure())).decode())


if __name__ == "__main__":
    main()
