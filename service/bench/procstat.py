"""CPU seconds and resident memory of a process and everything below it, read from `/proc`.

The kernel adds a reaped child's time (and that of every descendant the child reaped) to the
parent's `cutime`/`cstime`, and living descendants are summed directly, so the total of a process
tree only grows and a difference of two readings is the CPU the tree spent in between.

bubblewrap breaks that chain: the outer `bwrap` exits without reaping the namespace's pid 1, which is
reparented to the nearest subreaper, and with it goes the CPU time of the sandboxed program. So the
benchmark makes itself that subreaper (`OrphanReaper`), reaps the orphans and reports their time as
the `sandboxes` component.

A worker's warm zygotes (and the calls they fork) are its descendants too; they are reported apart,
as `<worker>/zygotes`, so the worker's own loop and the sandboxes' work can be told apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import resource
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
PROC = Path("/proc")
# In the command line of a zygote's bubblewrap and of the zygote itself.
ZYGOTE_MARK = "zygote_server"
PR_SET_CHILD_SUBREAPER = 36
REAP_EVERY_S = 0.1


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (which may contain spaces), or None if gone."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text[text.rindex(")") + 2 :].split()


def children_by_parent() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = defaultdict(list)
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields is not None:
            tree[int(fields[1])].append(int(entry.name))
    return tree


def descendants(pid: int, tree: dict[int, list[int]]) -> list[int]:
    found: list[int] = []
    stack = list(tree.get(pid, []))
    while stack:
        child = stack.pop()
        found.append(child)
        stack.extend(tree.get(child, []))
    return found


def own_cpu_s(pid: int) -> float:
    """User + system time of the process and of the children it has reaped."""
    return sum(user_system_s(pid).values())


def user_system_s(pid: int) -> dict[str, float]:
    """User and system time of the process and of the children it has reaped."""
    fields = _stat_fields(pid)
    if fields is None:
        return {"user": 0.0, "system": 0.0}
    # utime, stime, cutime, cstime are fields 14-17 of stat; fields[0] here is field 3 (state).
    utime, stime, cutime, cstime = (int(value) for value in fields[11:15])
    return {"user": (utime + cutime) / CLOCK_TICKS, "system": (stime + cstime) / CLOCK_TICKS}


def tree_user_system_s(pid: int, tree: dict[int, list[int]]) -> dict[str, float]:
    total = {"user": 0.0, "system": 0.0}
    for member in [pid, *descendants(pid, tree)]:
        for kind, seconds in user_system_s(member).items():
            total[kind] += seconds
    return total


def tree_cpu_s(pid: int, tree: dict[int, list[int]]) -> float:
    return own_cpu_s(pid) + sum(own_cpu_s(child) for child in descendants(pid, tree))


def command_line(pid: int) -> str:
    try:
        return (PROC / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError):
        return ""


def zygote_roots(pid: int, tree: dict[int, list[int]]) -> list[int]:
    """The topmost descendants of `pid` that are zygotes (their bubblewrap, when it has one)."""
    roots: list[int] = []
    stack = list(tree.get(pid, []))
    while stack:
        child = stack.pop()
        if ZYGOTE_MARK in command_line(child):
            roots.append(child)
        else:
            stack.extend(tree.get(child, []))
    return roots


def rss_bytes(pid: int) -> int:
    try:
        resident_pages = int((PROC / str(pid) / "statm").read_text().split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return 0
    return resident_pages * PAGE_BYTES


def peak_rss_bytes(pid: int) -> int:
    """VmHWM: the most the process has had resident since it started."""
    try:
        status = (PROC / str(pid) / "status").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return 0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


class OrphanReaper:
    """Adopts the orphans of our descendants and reaps them, leaving our own children to their owners."""

    def __init__(self, own_children: set[int]) -> None:
        self.own_children = own_children
        self.active = True

    @contextlib.contextmanager
    def paused(self) -> Iterator[None]:
        """While we wait for children of our own that the reaper cannot tell from orphans."""
        self.active = False
        try:
            yield
        finally:
            self.active = True

    @staticmethod
    def become_subreaper() -> None:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1)

    def reap(self) -> None:
        if not self.active:
            return
        for children in (PROC / "self" / "task").glob("*/children"):
            for pid in map(int, children.read_text().split()):
                fields = _stat_fields(pid)
                if pid not in self.own_children and fields is not None and fields[0] == "Z":
                    with contextlib.suppress(ChildProcessError):
                        os.waitpid(pid, os.WNOHANG)

    def cpu_s(self) -> float:
        self.reap()
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    async def reap_forever(self) -> None:
        while True:
            self.reap()
            await asyncio.sleep(REAP_EVERY_S)


class Components:
    """The named processes of one deployment (gateway, worker-1, redis, ...) on this host."""

    def __init__(self, pids: dict[str, int], reaper: OrphanReaper | None = None) -> None:
        self.pids = pids
        self.reaper = reaper

    def cpu_s(self) -> dict[str, float]:
        tree = children_by_parent()
        spent: dict[str, float] = {}
        for name, pid in self.pids.items():
            zygotes = sum(tree_cpu_s(root, tree) for root in zygote_roots(pid, tree))
            spent[name] = tree_cpu_s(pid, tree) - zygotes
            if zygotes:
                spent[f"{name}/zygotes"] = zygotes
        if self.reaper is not None:
            spent["sandboxes"] = self.reaper.cpu_s()
        return spent

    def rss_mib(self) -> dict[str, float]:
        return {name: round(rss_bytes(pid) / 2**20, 1) for name, pid in self.pids.items()}


def cpu_spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: round(after[name] - before.get(name, 0.0), 3) for name in after}


def component_of(name: str) -> str:
    """`worker-2` -> `worker`, `worker-2/zygotes` -> `zygotes`: the role a process plays."""
    if "/" in name:
        return name.rsplit("/", 1)[1]
    role, _, number = name.rpartition("-")
    return role if role and number.isdigit() else name


def cpu_ms_per_call(spent: dict[str, float], calls: int) -> dict[str, float] | None:
    """Milliseconds of CPU per call of each role (gateway, redis, worker, zygotes, sandboxes) and in all."""
    if not calls:
        return None
    by_role: dict[str, float] = defaultdict(float)
    for name, seconds in spent.items():
        by_role[component_of(name)] += seconds
    per_call = {role: round(seconds * 1000 / calls, 3) for role, seconds in sorted(by_role.items())}
    per_call["server_total"] = round(sum(by_role.values()) * 1000 / calls, 3)
    return per_call
