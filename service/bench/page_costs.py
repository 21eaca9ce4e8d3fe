"""What this machine charges for memory pages: the floor under a call forked from a warm interpreter.

Every call is a fork of a warm interpreter. Each page of the interpreter the call writes (a reference
count is enough) is first a copy-on-write fault, each page it allocates a fault on a fresh page, and
its exit unmaps them all. What a fault costs is the machine's: a fraction of a microsecond on bare
metal, several where a hypervisor keeps shadow copies of the guest's page tables. So the zygotes' CPU
per call is about the pages a call writes times this machine's cost per fault, and this tool measures
both factors:

- in this process: a fresh anonymous page's first write, a copy-on-write in a forked child, a fork and
  exit of this process, and copying a page with `memcpy` (the part of a copy-on-write that is work);
- in a warm sandbox (root only): the pages a trivial call has written, by mapping, when its program
  runs (read from the call's own `/proc/self/smaps`, so the reading is counted too).

Prints one JSON line and saves it under benchmarks/results/. Bounded: a few seconds.

    python -m service.bench.page_costs [--no-sandbox]
"""

from __future__ import annotations

import argparse
import asyncio
import mmap
import os
import resource
import statistics
import struct
import sys
import time
from typing import Any, NamedTuple

import orjson

from service.bench.machine import describe_machine, save_results
from service.bench.slots import job
from service.config import load_settings
from service.sandbox.executor import Sandbox

PAGE = mmap.PAGESIZE
PAGES = 2048
ROUNDS = 5
FORKS = 200
TRIVIAL_CALLS = 5
# Run as the call's program: `print(1+1)`, then the pages it has of its own (written since the fork, or
# new), summed by mapping, as one JSON line. Written for the sandbox's python3, with no imports of ours.
WRITTEN_PAGES_PROGRAM = r"""
print(1+1)
import json, sys
pages, mapping = {}, None
with open('/proc/self/smaps') as smaps:
    for line in smaps:
        fields = line.split()
        if not fields[0].endswith(':'):
            mapping = fields[5] if len(fields) > 5 else '[anon]'
        elif fields[0] == 'Private_Dirty:':
            pages[mapping] = pages.get(mapping, 0) + int(fields[1]) * 1024 // 4096
print(json.dumps({'executable': sys.executable, 'pages': pages}))
"""


class Writes(NamedTuple):
    """One write to each page of an area: this thread's CPU for it, in ns, and its page faults."""

    cpu_ns: int
    faults: int


class FaultCost(NamedTuple):
    """Per page of an area: what its first write cost beyond a second's, and its faults (1 when each
    page faulted once)."""

    ns: float
    faults: float


def write_each_page(area: mmap.mmap) -> Writes:
    faults = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
    started = time.thread_time_ns()
    for offset in range(0, PAGES * PAGE, PAGE):
        area[offset] = 1
    cpu_ns = time.thread_time_ns() - started
    return Writes(cpu_ns, resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - faults)


def fault_cost(area: mmap.mmap) -> FaultCost:
    """The first write to each page of `area` less a second (the loop's own cost)."""
    first = write_each_page(area)
    again = write_each_page(area)
    return FaultCost((first.cpu_ns - again.cpu_ns) / PAGES, (first.faults - again.faults) / PAGES)


def private_area() -> mmap.mmap:
    # Private, as a process's heap is: anonymous mmap is shared unless told otherwise, and a shared
    # page is not copied on a write after a fork. In 4 KiB pages, as the interpreter's are, even where
    # transparent huge pages are always on.
    area = mmap.mmap(-1, PAGES * PAGE, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    area.madvise(mmap.MADV_NOHUGEPAGE)
    return area


def fresh_page() -> FaultCost:
    area = private_area()
    try:
        return fault_cost(area)
    finally:
        area.close()


def copy_on_write() -> FaultCost:
    """A forked child's first write to each of its parent's pages."""
    area = private_area()
    write_each_page(area)
    readable, writable = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.write(writable, struct.pack("dd", *fault_cost(area)))
        finally:
            os._exit(0)
    os.close(writable)
    try:
        _, status = os.waitpid(pid, 0)
        answer = os.read(readable, 16)
    finally:
        os.close(readable)
        area.close()
    if status != 0 or len(answer) != 16:
        raise RuntimeError(f"the forked child did not report (status {status})")
    return FaultCost(*struct.unpack("dd", answer))


def page_copy_ns() -> float:
    """Per page, one `memcpy` of PAGES pages from memory already this process's."""
    source, target = bytearray(b"\1" * (PAGES * PAGE)), bytearray(PAGES * PAGE)
    target[:] = source
    started = time.thread_time_ns()
    target[:] = source
    return (time.thread_time_ns() - started) / PAGES


def fork_and_exit_us() -> dict[str, float]:
    """A fork of this process whose child exits at once: the parent's CPU per fork (and wait), and
    the child's (its exit: unmapping what the fork gave it)."""
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.thread_time_ns()
    for _ in range(FORKS):
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
    parent_ns = time.thread_time_ns() - started
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    children_s = (children.ru_utime - children_before.ru_utime) + (children.ru_stime - children_before.ru_stime)
    return {
        "parent_us": round(parent_ns / FORKS / 1000, 1),
        "child_us": round(children_s / FORKS * 1e6, 1),
        "this_process_rss_mb": round(resident_kb() / 1024, 1),
    }


def resident_kb() -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def by_kind(pages: dict[str, int], executable: str) -> dict[str, int]:
    """A call's written pages by what they hold: the interpreter's static data (its types, small
    integers and identifiers, whose reference counts every call writes), its heaps (pymalloc's arenas
    are anonymous mappings, the C heap `[heap]`), its stack, and the shared libraries' data."""
    kinds = {"interpreter_data": 0, "anonymous": 0, "c_heap": 0, "stack": 0, "libraries": 0}
    real_executable = os.path.realpath(executable)
    for mapping, count in pages.items():
        if mapping in (executable, real_executable):
            kinds["interpreter_data"] += count
        elif mapping == "[anon]":
            kinds["anonymous"] += count
        elif mapping == "[heap]":
            kinds["c_heap"] += count
        elif mapping == "[stack]":
            kinds["stack"] += count
        else:
            kinds["libraries"] += count
    return kinds


async def trivial_call_pages() -> dict[str, Any]:
    """The pages of a trivial call in a warm sandbox, from the last of a few calls in one slot (the
    first ones also make the slot's namespace)."""
    sandbox = Sandbox(load_settings(worker_concurrency=1))
    sandbox.check()
    await sandbox.start()
    try:
        counts = []
        for _ in range(TRIVIAL_CALLS):
            result = await sandbox.execute(job(WRITTEN_PAGES_PROGRAM), 0)
            lines = result.stdout.splitlines()
            if result.exit_code != 0 or len(lines) != 2 or lines[0] != "2":
                raise RuntimeError(f"the trivial call failed: {result.status} {result.stderr or result.reason}")
            seen = orjson.loads(lines[1])
            counts.append(by_kind(seen["pages"], seen["executable"]))
    finally:
        await sandbox.aclose()
    return {kind: int(statistics.median(count[kind] for count in counts)) for kind in counts[0]}


def per_page(name: str, costs: list[FaultCost]) -> dict[str, float]:
    """The median cost in µs, and the faults per page beside it: 1.0 shows each page was one fault."""
    return {
        f"{name}_us": round(statistics.median(cost.ns for cost in costs) / 1000, 2),
        f"{name}_faults_per_page": round(statistics.median(cost.faults for cost in costs), 3),
    }


def measure(with_sandbox: bool) -> dict[str, Any]:
    record: dict[str, Any] = {
        "scenario": "page_costs",
        **per_page("fresh_page", [fresh_page() for _ in range(ROUNDS)]),
        **per_page("copy_on_write", [copy_on_write() for _ in range(ROUNDS)]),
        "page_memcpy_us": round(statistics.median(page_copy_ns() for _ in range(ROUNDS)) / 1000, 3),
        "fork_and_exit": fork_and_exit_us(),
    }
    if with_sandbox and os.geteuid() != 0:
        sys.stderr.write("not root: no warm sandbox, so no trivial call's pages (see --no-sandbox)\n")
    elif with_sandbox:
        written = asyncio.run(trivial_call_pages())
        record["trivial_call_written_pages"] = {**written, "total": sum(written.values())}
        # What the call's written pages alone cost at this machine's price of a copy-on-write.
        record["trivial_call_faults_ms"] = round(sum(written.values()) * record["copy_on_write_us"] / 1000, 2)
    return record


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-sandbox", action="store_true", help="only this process's measurements (no root needed)")
    arguments = parser.parse_args()
    machine = describe_machine()
    record = measure(with_sandbox=not arguments.no_sandbox)
    sys.stdout.write(orjson.dumps(record).decode() + "\n")
    path = save_results("page-costs", machine, [record])
    sys.stderr.write(f"saved {path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
