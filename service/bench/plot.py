"""Latency and throughput against outstanding calls, from the sweep of one run, as a PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def plot_sweep(sweep: list[dict[str, Any]], machine: dict[str, Any], path: Path) -> None:
    levels = [record["concurrency"] for record in sweep]
    figure, latency_axis = plt.subplots(figsize=(7, 4.2), dpi=110)
    for percentile, style in (("p50", "o-"), ("p90", "s--"), ("p99", "^:")):
        values = [record["latency_ms"][percentile] for record in sweep]
        latency_axis.plot(levels, values, style, label=f"{percentile} latency")
    latency_axis.set_xscale("log")
    latency_axis.set_yscale("log")
    latency_axis.set_xlabel("outstanding calls (print(1+1))")
    latency_axis.set_ylabel("latency, ms")
    throughput_axis = latency_axis.twinx()
    throughput_axis.plot(levels, [record["calls_per_s"] for record in sweep], "k.-", alpha=0.6, label="calls/s")
    throughput_axis.set_ylabel("calls/s")
    throughput_axis.set_ylim(bottom=0)
    lines = latency_axis.get_legend_handles_labels()
    more = throughput_axis.get_legend_handles_labels()
    latency_axis.legend(lines[0] + more[0], lines[1] + more[1], loc="upper left", fontsize=8)
    latency_axis.set_title(
        f"Sandpit, one machine: {machine['cores']} x {machine['cpu']}, {machine['commit']}, {machine['date'][:10]}, "
        f"load average {machine.get('loadavg_1m', '?')}",
        fontsize=9,
    )
    latency_axis.grid(True, which="both", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
