"""Plots of a Locust run: throughput and p50/p99 latency over time per request name, and RSS over time."""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _latency(text: str) -> float | None:
    """Locust writes 0 for a name with no request in the window; on a log axis that is a gap, not a value."""
    value = _number(text)
    return value if value else None


def plot_history(history_csv: Path, path: Path, title: str) -> None:
    series: dict[str, list[tuple[float, float | None, float | None, float | None]]] = defaultdict(list)
    with history_csv.open() as history:
        for row in csv.DictReader(history):
            series[row["Name"]].append(
                (float(row["Timestamp"]), _number(row["Requests/s"]), _latency(row["50%"]), _latency(row["99%"]))
            )
    if not series:
        return
    start = min(points[0][0] for points in series.values())
    figure, (rate_axis, latency_axis) = plt.subplots(2, 1, figsize=(10, 8), dpi=100, sharex=True)
    colors = plt.get_cmap("tab20").colors
    for index, (name, points) in enumerate(sorted(series.items())):
        times = [t - start for t, *_ in points]
        style = {"lw": 2.5 if name == "Aggregated" else 1.0, "color": colors[index % len(colors)]}
        rate_axis.plot(times, [p[1] for p in points], label=name, **style)
        latency_axis.plot(times, [p[2] for p in points], **style)
        latency_axis.plot(times, [p[3] for p in points], ls="--", **style)
    rate_axis.set_ylabel("requests/s")
    rate_axis.legend(fontsize=7, ncol=2, loc="upper left")
    latency_axis.set_ylabel("latency, ms (solid p50, dashed p99)")
    latency_axis.set_yscale("log")
    latency_axis.set_xlabel("seconds")
    rate_axis.set_title(f"Sandpit {title}: throughput and latency by request name")
    for axis in (rate_axis, latency_axis):
        axis.grid(True, alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)


def plot_rss(rows: list[dict[str, float]], names: list[str], path: Path) -> None:
    if not rows:
        return
    figure, axis = plt.subplots(figsize=(10, 4), dpi=100)
    for name in names:
        axis.plot([row["t_s"] for row in rows], [row[name] for row in rows], label=name)
    axis.set_xlabel("seconds")
    axis.set_ylabel("RSS, MiB")
    axis.legend(fontsize=8)
    axis.grid(True, alpha=0.3)
    figure.tight_layout()
    figure.savefig(path)
    plt.close(figure)
