"""The same code without the service: `python3 -c CODE` directly, and under a plain bubblewrap.

Runs one at a time, right before the service runs the same code unloaded, so both see the same
machine: the figures are the cost of a fresh interpreter (and of a fresh set of namespaces) that the
service's per-call overhead is compared against.
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import time

PYTHON = "/usr/bin/python3"
# The namespaces a Sandpit sandbox gets, over a read-only view of the host: what bwrap itself costs.
PLAIN_BWRAP = [
    "--unshare-user",
    "--unshare-pid",
    "--unshare-net",
    "--unshare-ipc",
    "--unshare-uts",
    "--die-with-parent",
    "--ro-bind",
    "/",
    "/",
    "--proc",
    "/proc",
    "--dev",
    "/dev",
    "--tmpfs",
    "/tmp",
    "--",
]


async def _median_ms(argv: list[str], runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        process = await asyncio.create_subprocess_exec(
            *argv, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
        )
        if await process.wait() != 0:
            raise RuntimeError(f"bare baseline failed: {argv}")
        samples.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(samples), 2)


async def measure_bare(code: str, runs: int) -> dict[str, float | None]:
    python_argv = [PYTHON, "-I", "-B", "-c", code]
    bwrap = shutil.which("bwrap")
    return {
        "python_p50_ms": await _median_ms(python_argv, runs),
        "bwrap_python_p50_ms": await _median_ms([bwrap, *PLAIN_BWRAP, *python_argv], runs) if bwrap else None,
    }


def compare(service_p50_ms: float | None, bare: dict[str, float | None]) -> dict[str, float | None]:
    """Service overhead: how much slower the whole path is than the code run bare, in ms and as a ratio."""
    python_ms = bare["python_p50_ms"]
    bwrap_ms = bare["bwrap_python_p50_ms"]
    if service_p50_ms is None or python_ms is None:
        return {**bare, "overhead_ms": None, "ratio": None}
    return {
        **bare,
        "overhead_ms": round(service_p50_ms - python_ms, 2),
        "ratio": round(service_p50_ms / python_ms, 2),
        "overhead_vs_bwrap_ms": round(service_p50_ms - bwrap_ms, 2) if bwrap_ms is not None else None,
    }
