"""The numbers of the design brief, and whether a run met them: the last JSON line of a benchmark."""

from __future__ import annotations

from typing import Any


def _find(records: list[dict[str, Any]], scenario: str, concurrency: int | None = None) -> list[dict[str, Any]]:
    return [
        record
        for record in records
        if record["scenario"] == scenario and (concurrency is None or record.get("concurrency") == concurrency)
    ]


def _verdict(measured: float | None, target: float, at_most: bool) -> dict[str, Any]:
    met = None if measured is None else (measured <= target if at_most else measured >= target)
    return {"measured": measured, "target": target, "met": met}


def check_targets(records: list[dict[str, Any]]) -> dict[str, Any]:
    summary: dict[str, Any] = {"scenario": "targets"}
    unloaded = _find(records, "trivial_python", 1)
    if unloaded:
        summary["trivial_p50_ms"] = _verdict(unloaded[0]["latency_ms"]["p50"], 10.0, at_most=True)
        bare = unloaded[0].get("bare") or {}
        summary["sandbox_overhead_ms"] = _verdict(bare.get("overhead_ms"), 3.0, at_most=True)
    trivial_loaded = [r for r in _find(records, "trivial_python") + _find(records, "sweep") if not r["errors"]]
    if trivial_loaded:
        best = max(trivial_loaded, key=lambda record: record["calls_per_s"])
        summary["trivial_calls_per_s"] = {
            **_verdict(best["calls_per_s"], 400.0, at_most=False),
            "at_concurrency": best["concurrency"],
        }
    numpy = _find(records, "numpy_sympy", 1)
    if numpy:
        summary["numpy_sympy_p50_ms"] = _verdict(numpy[0]["latency_ms"]["p50"], 20.0, at_most=True)
    for hold in _find(records, "hold"):
        summary["hold_outstanding"] = {
            **_verdict(hold["peak_outstanding"], hold["calls"], at_most=False),
            "unfinished": hold["unfinished"],
            "errors": hold["errors"],
        }
    return summary
