"""Reading py-spy's collapsed stacks into shares by function."""

from __future__ import annotations

from service.bench.profile import summarize

THREAD = 'process 10:"python -m service.cli gateway";Thread 10 (active)'
COLLAPSED = "\n".join(
    f"{THREAD};{frames} {count}"
    for frames, count in (
        ("run (asyncio/base_events.py:600);handle (service/gateway/calls.py:40);dumps (json/__init__.py:231)", 6),
        ("run (asyncio/base_events.py:600);handle (service/gateway/calls.py:52)", 2),
        ("run (asyncio/base_events.py:612);read (redis/connection.py:9)", 2),
    )
)


def test_summary_shares_samples_by_function_inclusive_and_own() -> None:
    summary = summarize(COLLAPSED)
    assert summary["samples"] == 10
    inclusive = {entry["function"]: entry["share"] for entry in summary["inclusive"]}
    own = {entry["function"]: entry["share"] for entry in summary["own"]}
    # Lines of one function are one entry; the thread's name is not a function.
    assert inclusive["run (asyncio/base_events.py)"] == 1.0
    assert inclusive["handle (service/gateway/calls.py)"] == 0.8
    assert own == {
        "dumps (json/__init__.py)": 0.6,
        "handle (service/gateway/calls.py)": 0.2,
        "read (redis/connection.py)": 0.2,
    }
    assert not any(name.startswith(("process", "Thread")) for name in inclusive)
