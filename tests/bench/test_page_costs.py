"""`service.bench.page_costs`: its first writes are the page faults it says they are, a trivial call's
written pages are read from a real warm sandbox and sorted by what they hold.

What a fault costs is the benchmark's figure, not a test's: these check that the figure is of faults."""

from __future__ import annotations

import asyncio
import os

import pytest

from service.bench.page_costs import by_kind, copy_on_write, fresh_page, trivial_call_pages


def test_a_fresh_page_faults_once_on_its_first_write() -> None:
    cost = fresh_page()
    assert 0.95 <= cost.faults <= 1.05


def test_a_forked_child_faults_once_on_each_page_it_shares_with_its_parent() -> None:
    cost = copy_on_write()
    assert 0.95 <= cost.faults <= 1.05
    # Measured as CPU time, each fault is a trap, an allocation and a copy: more than the loop's own
    # write, which was taken away.
    assert cost.ns > 0


def test_written_pages_are_sorted_by_what_they_hold() -> None:
    pages = {
        "/usr/bin/python3.11": 70,
        "[anon]": 200,
        "[heap]": 60,
        "[stack]": 3,
        "/usr/lib/x86_64-linux-gnu/libc.so.6": 2,
        "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2": 1,
    }
    assert by_kind(pages, "/usr/bin/python3.11") == {
        "interpreter_data": 70,
        "anonymous": 200,
        "c_heap": 60,
        "stack": 3,
        "libraries": 3,
    }


@pytest.mark.skipif(os.geteuid() != 0, reason="a warm sandbox needs root (the sandbox uid, cgroups)")
@pytest.mark.timeout(180)
def test_a_trivial_call_in_a_warm_sandbox_writes_pages_of_the_interpreter_it_was_forked_from() -> None:
    written = asyncio.run(trivial_call_pages())
    # Forked, not started afresh: the interpreter's static objects (types, small integers) are shared
    # with the zygote, and their reference counts are written in the call's own copy.
    assert written["interpreter_data"] > 0
    assert written["anonymous"] > 0
    # Hundreds of pages (about 400 here), not the whole image (over 3,000 resident): the rest is shared.
    assert sum(written.values()) < 1000
