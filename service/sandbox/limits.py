"""How a call's memory, processes and CPU are limited and measured: cgroup v2, cgroup v1, or rlimits.

One `Limiter` is chosen when the worker starts and reported: under a cgroup (v2 where the host
delegates one, v1 where its memory, pids and cpuacct hierarchies are writable) each sandbox slot gets
a group per kind of call, made once and reused call after call (a slot runs one call at a time).
Before a call the worker writes the call's memory and process limits into the group and notes its
counters. Processes join a group by writing "0" to a `cgroup.procs` file the worker opened (the
kernel checks the opener's rights, so the unprivileged sandbox needs none): a zygote's init once, so
that the calls it forks are born there, or a cold call's first process. Afterwards the counters give
the CPU time and peak memory of the whole process tree, and an OOM kill counted in the group is what
makes `memory_limit`.

All of a worker's groups sit under one group of its own, which the kernel's CPU scheduler weighs as a
single peer of the worker (v2's `cpu` controller; v1's `cpu` hierarchy where it is writable): calls
share the CPU fairly among themselves, however many loop at once, and the worker, its zygotes and the
gateway still get their turn.

Where no cgroup can be had (an unprivileged container, say), `RLIMIT_AS` caps memory instead, with
`MALLOC_ARENA_MAX` set so that glibc's per-thread arenas do not exhaust the address space.
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
from abc import ABC, abstractmethod
from dataclasses import dataclass
from enum import Enum, StrEnum
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")
V1_CONTROLLERS = ("memory", "pids", "cpuacct")
# Used when writable: the calls' CPU shares (the niceness of calls alone gives way under hundreds).
V1_OPTIONAL = ("cpu",)
V2_CONTROLLERS = ("memory", "pids", "cpu")
UNLIMITED = resource.RLIM_INFINITY
# The fallback's arenas: glibc otherwise reserves 64 MiB of address space per thread's arena.
MALLOC_ARENAS = "2"

Rlimit = tuple[int, int, int]


class LimitMode(StrEnum):
    cgroup_v2 = "cgroup_v2"
    cgroup_v1 = "cgroup_v1"
    rlimit = "rlimit"


class Standing(Enum):
    """Where a call stands among the other calls, which sets its group's CPU weight."""

    # Has used little CPU yet: favoured, so that a short call among hundreds of long ones runs at once.
    young = "young"
    # Has used its favoured share: the least.
    long = "long"
    # Its deadline is near: enough for the slot's init (which shares the group) to wake and kill it on
    # time, without making the dying loops the equals of young calls again.
    ending = "ending"


# A call's CPU weight among the other calls, by its standing. (Tried: the extremes of the ranges, 262144
# and 2, changed nothing measurable with 400 loops, and a demoted call's 2 starved the trivial calls
# that a busy machine pushed past their favoured share.)
V1_SHARES = {Standing.young: 1024, Standing.ending: 64, Standing.long: 8}
V2_WEIGHTS = {Standing.young: 100, Standing.ending: 6, Standing.long: 1}


@dataclass(frozen=True)
class Budget:
    """What one call may use."""

    memory_bytes: int
    cpu_seconds: int
    max_processes: int
    max_open_files: int
    max_file_bytes: int


@dataclass(frozen=True)
class CallUsage:
    """What a call used; None where this mode cannot tell (then the process's own figures are used)."""

    cpu_ms: float | None = None
    peak_memory_kb: int | None = None
    # True when the kernel killed a process of the call for memory; None when no cgroup watched.
    oom_killed: bool | None = None


def common_rlimits(budget: Budget) -> list[Rlimit]:
    return [
        # A hard limit one second above the soft one: SIGXCPU first, which reads as a timeout.
        (resource.RLIMIT_CPU, budget.cpu_seconds, budget.cpu_seconds + 1),
        (resource.RLIMIT_NOFILE, budget.max_open_files, budget.max_open_files),
        (resource.RLIMIT_FSIZE, budget.max_file_bytes, budget.max_file_bytes),
        (resource.RLIMIT_CORE, 0, 0),
    ]


class SlotGroup(ABC):
    """The limits of one kind of call in one sandbox slot, which runs one call at a time."""

    @abstractmethod
    def prepare(self, budget: Budget) -> None:
        """Set the next call's limits and note the counters it will be measured against."""

    @abstractmethod
    def join_fds(self) -> list[int]:
        """Fresh descriptors the call's first process writes "0" to, to join the group (none without
        one); the caller closes its own once they are passed on. A worker may have a thousand groups:
        their cgroup.procs files are not kept open between calls."""

    @abstractmethod
    def usage(self) -> CallUsage:
        """What the call used since `prepare`, once all of its processes are gone."""

    def weigh(self, standing: Standing, halvings: int = 0) -> None:
        """The group's CPU weight for its call's standing, halved `halvings` times (never below the long
        weight). No-op without a CPU controller."""
        return None

    def cpu_used_ms(self) -> float:
        """CPU time of the group's processes since `prepare` (0 where no cgroup counts it)."""
        return 0.0

    @abstractmethod
    def close(self) -> None:
        """Release what the group holds open (the limiter removes the group itself)."""


class Limiter(ABC):
    mode: LimitMode

    @abstractmethod
    def group(self, name: str) -> SlotGroup:
        """The group called `name` (made on first use, then the same one): one per slot and kind of call."""

    @abstractmethod
    def rlimits(self, budget: Budget) -> list[Rlimit]:
        """The rlimits a call's first process sets on itself before it runs the program."""

    def env(self) -> dict[str, str]:
        """Environment the sandbox needs in this mode, beyond the usual."""
        return {}

    def describe(self) -> str:
        return self.mode.value

    @abstractmethod
    def close(self) -> None:
        """Remove what the limiter made (called once every call has ended)."""


class NoGroup(SlotGroup):
    def prepare(self, budget: Budget) -> None:
        return None

    def join_fds(self) -> list[int]:
        return []

    def usage(self) -> CallUsage:
        return CallUsage()

    def close(self) -> None:
        return None


class RlimitLimiter(Limiter):
    """The fallback: address space and process count per uid, limited by the kernel's rlimits."""

    mode = LimitMode.rlimit

    def __init__(self, reason: str = "", shared_processes: int = 0) -> None:
        self.reason = reason
        # RLIMIT_NPROC counts every process of the uid: the warm zygotes' slots (3 each) share it.
        self.shared_processes = shared_processes
        self.none = NoGroup()

    def group(self, name: str) -> SlotGroup:
        return self.none

    def rlimits(self, budget: Budget) -> list[Rlimit]:
        return [
            *common_rlimits(budget),
            (resource.RLIMIT_AS, budget.memory_bytes, budget.memory_bytes),
            (
                resource.RLIMIT_NPROC,
                budget.max_processes + self.shared_processes,
                budget.max_processes + self.shared_processes,
            ),
        ]

    def env(self) -> dict[str, str]:
        return {"MALLOC_ARENA_MAX": MALLOC_ARENAS}

    def describe(self) -> str:
        return f"rlimit ({self.reason})" if self.reason else "rlimit"

    def close(self) -> None:
        return None


def write(path: Path | str, value: str) -> None:
    # os-level I/O: cgroup files are read and written several times per call, a file object costs more.
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)


def counter_in(text: bytes, name: str) -> int:
    """The value of `name` in a flat-keyed cgroup file (memory.events, cpu.stat, memory.oom_control)."""
    key = name.encode() + b" "
    for line in text.splitlines():
        if line.startswith(key):
            return int(line[len(key) :])
    return 0


class GroupFile:
    """A cgroup file the worker reads (or writes) on every call: it stays open for the group's life, and
    each access is one pread or pwrite (a cgroup file read from offset 0 is generated afresh), not an
    open, a path walk and a close. A slot's group runs one call at a time, so a handful per group."""

    def __init__(self, path: Path, flags: int = os.O_RDONLY) -> None:
        self.fd = os.open(path, flags | os.O_CLOEXEC)

    def read(self) -> bytes:
        return os.pread(self.fd, 4096, 0)

    def read_int(self) -> int:
        return int(self.read())

    def counter(self, name: str) -> int:
        """The value of `name` in this flat-keyed file."""
        return counter_in(self.read(), name)

    def write(self, value: bytes) -> None:
        os.pwrite(self.fd, value, 0)

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def open_group_files(*files: tuple[Path, int]) -> list[GroupFile]:
    """Every (path, flags) opened, or none: a group that cannot be made must not leak descriptors."""
    opened: list[GroupFile] = []
    try:
        for path, flags in files:
            opened.append(GroupFile(path, flags))
    except OSError:
        for file in opened:
            file.close()
        raise
    return opened


def open_procs(group: Path) -> int:
    # Opened by the worker: the kernel checks the opener's rights when the call writes to it.
    return os.open(group / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC)


def remove_tree(group: Path) -> None:
    """rmdir a cgroup and its children, deepest first (cgroupfs has no recursive remove)."""
    if not group.is_dir():
        return
    for child in [entry for entry in group.iterdir() if entry.is_dir()]:
        remove_tree(child)
    with contextlib.suppress(OSError):
        group.rmdir()


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_groups(parent: Path) -> None:
    """Groups of workers that died without removing theirs."""
    for group in parent.glob("sandpit-*"):
        pid = group.name.removeprefix("sandpit-")
        if pid.isdigit() and not pid_alive(int(pid)):
            remove_tree(group)


class CpuWeight:
    """A group's cpu.shares (v1) or cpu.weight (v2), written only when it changes.

    Not `cpu.idle`: SCHED_IDLE calls preempted inside the kernel hold up RCU grace periods, and with
    them every cgroup attach of the machine (seen: one new process per second among 400 idle loops)."""

    def __init__(self, path: Path, weights: dict[Standing, int]) -> None:
        self.path = path
        self.weights = weights
        # False once a write failed: no CPU controller here after all, niceness alone shares the CPU.
        self.usable = True
        self.written: str | None = None
        # A new group has the default weight: start it young.
        self.set(Standing.young)

    def set(self, standing: Standing, halvings: int = 0) -> None:
        value = str(max(self.weights[standing] >> halvings, self.weights[Standing.long]))
        if not self.usable or value == self.written:
            return
        try:
            write(self.path, value)
        except OSError:
            self.usable = False
            return
        self.written = value


class V1Group(SlotGroup):
    def __init__(self, dirs: dict[str, Path]) -> None:
        self.dirs = dirs
        # cpu and cpuacct may share one hierarchy: join each directory once.
        self.join_dirs = list(dict.fromkeys(dirs.values()))
        memory = dirs["memory"]
        self.memory = memory
        # CPU time is read often: the sweeper reads every young call's every 50 ms.
        self.cpu, self.current, self.peak, self.events = open_group_files(
            (dirs["cpuacct"] / "cpuacct.usage", os.O_RDONLY),
            (memory / "memory.usage_in_bytes", os.O_RDONLY),
            (memory / "memory.max_usage_in_bytes", os.O_RDWR),
            (memory / "memory.oom_control", os.O_RDONLY),
        )
        self.weight: CpuWeight | None = CpuWeight(dirs["cpu"] / "cpu.shares", V1_SHARES) if "cpu" in dirs else None
        self.has_memsw = (memory / "memory.memsw.limit_in_bytes").exists()
        self.limits: tuple[int, int] | None = None
        self.cpu_ns = 0
        self.ooms = 0
        self.base_bytes = 0

    def prepare(self, budget: Budget) -> None:
        if self.limits != (budget.memory_bytes, budget.max_processes):
            self._set_memory(budget.memory_bytes)
            write(self.dirs["pids"] / "pids.max", str(budget.max_processes))
            self.limits = (budget.memory_bytes, budget.max_processes)
        # Writing anything resets the peak to the group's usage now.
        self.peak.write(b"0")
        self.base_bytes = self.current.read_int()
        self.ooms = self.events.counter("oom_kill")
        self.cpu_ns = self.cpu.read_int()

    def _set_memory(self, limit: int) -> None:
        if not self.has_memsw:
            write(self.memory / "memory.limit_in_bytes", str(limit))
            return
        # memory+swap may never be below memory: order the two writes by the direction of change.
        try:
            write(self.memory / "memory.limit_in_bytes", str(limit))
            write(self.memory / "memory.memsw.limit_in_bytes", str(limit))
        except OSError:
            write(self.memory / "memory.memsw.limit_in_bytes", str(limit))
            write(self.memory / "memory.limit_in_bytes", str(limit))

    def join_fds(self) -> list[int]:
        return [open_procs(path) for path in self.join_dirs]

    def weigh(self, standing: Standing, halvings: int = 0) -> None:
        if self.weight is not None:
            self.weight.set(standing, halvings)

    def cpu_used_ms(self) -> float:
        return (self.cpu.read_int() - self.cpu_ns) / 1e6

    def usage(self) -> CallUsage:
        peak = self.peak.read_int()
        return CallUsage(
            cpu_ms=self.cpu_used_ms(),
            peak_memory_kb=max(0, peak - self.base_bytes) // 1024,
            oom_killed=self.events.counter("oom_kill") > self.ooms,
        )

    def close(self) -> None:
        for file in (self.cpu, self.current, self.peak, self.events):
            file.close()


class CgroupLimiter(Limiter):
    """What both cgroup versions share: this worker's own subtree (one per hierarchy), its groups made
    on first use and kept, and only the rlimits that a cgroup does not replace."""

    def __init__(self, parents: list[Path]) -> None:
        for parent in parents:
            remove_stale_groups(parent)
        self.roots = [parent / f"sandpit-{os.getpid()}" for parent in parents]
        for root in self.roots:
            root.mkdir(exist_ok=True)
        self.groups: dict[str, SlotGroup] = {}

    @abstractmethod
    def make_group(self, name: str) -> SlotGroup: ...

    def group(self, name: str) -> SlotGroup:
        if name not in self.groups:
            self.groups[name] = self.make_group(name)
        return self.groups[name]

    def rlimits(self, budget: Budget) -> list[Rlimit]:
        return common_rlimits(budget)

    def describe(self) -> str:
        return f"{self.mode.value} ({self.roots[0].parent})"

    def close(self) -> None:
        for group in self.groups.values():
            group.close()
        for root in self.roots:
            remove_tree(root)


class CgroupV1Limiter(CgroupLimiter):
    mode = LimitMode.cgroup_v1

    def __init__(self, parents: dict[str, Path]) -> None:
        super().__init__(list(parents.values()))
        self.bases = dict(zip(parents, self.roots, strict=True))

    def make_group(self, name: str) -> SlotGroup:
        dirs = {controller: base / name for controller, base in self.bases.items()}
        for path in dirs.values():
            path.mkdir(exist_ok=True)
        return V1Group(dirs)


class V2Group(SlotGroup):
    def __init__(self, path: Path) -> None:
        self.path = path
        self.limits: tuple[int, int] | None = None
        self.weight = CpuWeight(path / "cpu.weight", V2_WEIGHTS)
        self.cpu, self.current, self.events = open_group_files(
            (path / "cpu.stat", os.O_RDONLY),
            (path / "memory.current", os.O_RDONLY),
            (path / "memory.events", os.O_RDONLY),
        )
        # memory.peak (Linux 5.19+) resets per open descriptor (6.12+): one per call, reset before it.
        self.peak_resets = (path / "memory.peak").exists()
        self.peak_fd: int | None = None
        self.cpu_us = 0
        self.ooms = 0
        self.base_bytes = 0

    def prepare(self, budget: Budget) -> None:
        if self.limits != (budget.memory_bytes, budget.max_processes):
            write(self.path / "memory.max", str(budget.memory_bytes))
            with contextlib.suppress(FileNotFoundError):
                # No swap: the limit is of memory, not of what can be paged out.
                write(self.path / "memory.swap.max", "0")
            write(self.path / "pids.max", str(budget.max_processes))
            self.limits = (budget.memory_bytes, budget.max_processes)
        self._close_peak()
        if self.peak_resets:
            peak_fd = os.open(self.path / "memory.peak", os.O_RDWR | os.O_CLOEXEC)
            try:
                os.write(peak_fd, b"reset\n")
            except OSError:
                os.close(peak_fd)
                self.peak_resets = False
            else:
                self.peak_fd = peak_fd
        self.base_bytes = self.current.read_int()
        self.ooms = self.events.counter("oom_kill")
        self.cpu_us = self.cpu.counter("usage_usec")

    def join_fds(self) -> list[int]:
        return [open_procs(self.path)]

    def weigh(self, standing: Standing, halvings: int = 0) -> None:
        self.weight.set(standing, halvings)

    def cpu_used_ms(self) -> float:
        return (self.cpu.counter("usage_usec") - self.cpu_us) / 1000

    def usage(self) -> CallUsage:
        peak: int | None = None
        if self.peak_fd is not None:
            os.lseek(self.peak_fd, 0, os.SEEK_SET)
            peak = max(0, int(os.read(self.peak_fd, 64)) - self.base_bytes) // 1024
            self._close_peak()
        return CallUsage(
            cpu_ms=self.cpu_used_ms(),
            peak_memory_kb=peak,
            oom_killed=self.events.counter("oom_kill") > self.ooms,
        )

    def _close_peak(self) -> None:
        if self.peak_fd is not None:
            os.close(self.peak_fd)
            self.peak_fd = None

    def close(self) -> None:
        self._close_peak()
        for file in (self.cpu, self.current, self.events):
            file.close()


class CgroupV2Limiter(CgroupLimiter):
    mode = LimitMode.cgroup_v2

    def __init__(self, parent: Path) -> None:
        super().__init__([parent])
        self.base = self.roots[0]
        enable_controllers(self.base)

    def make_group(self, name: str) -> SlotGroup:
        path = self.base / name
        path.mkdir(exist_ok=True)
        return V2Group(path)


def enable_controllers(group: Path) -> None:
    write(group / "cgroup.subtree_control", " ".join(f"+{name}" for name in V2_CONTROLLERS))


def own_cgroups() -> dict[str, str]:
    """Controller (or "" for the v2 hierarchy) -> this process's cgroup path."""
    paths: dict[str, str] = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if controllers else [""]:
            paths[name] = path
    return paths


@dataclass(frozen=True)
class CgroupMount:
    point: Path
    # The group of the hierarchy mounted there: "/" on a host, the container's own group in some.
    root: str

    def directory_of(self, group: str) -> Path:
        """Where `group` (as /proc/self/cgroup names it) is under this mount."""
        path = Path(group)
        relative = path.relative_to(self.root) if path.is_relative_to(self.root) else Path(group.lstrip("/"))
        return self.point / relative


def cgroup_mounts() -> dict[str, CgroupMount]:
    """Controller (or "" for cgroup2) -> where its hierarchy is mounted."""
    mounts: dict[str, CgroupMount] = {}
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        separator = fields.index("-")
        fstype, options = fields[separator + 1], fields[separator + 3]
        mount = CgroupMount(Path(fields[4]), fields[3])
        if fstype == "cgroup2":
            mounts.setdefault("", mount)
        elif fstype == "cgroup":
            for option in options.split(","):
                if option in V1_CONTROLLERS or option in V1_OPTIONAL:
                    mounts.setdefault(option, mount)
    return mounts


def v2_parent(group: Path) -> Path:
    """A group under which this worker may enable the controllers for children of its own.

    cgroup v2 lets a group that holds processes have no controller-enabled children, so when the
    worker's own group holds processes (the container's root group, say) they move to a leaf first.
    """
    wanted = set(V2_CONTROLLERS)
    if not wanted <= set((group / "cgroup.controllers").read_text().split()):
        raise OSError(f"controllers {sorted(wanted)} are not delegated to {group}")
    try:
        enable_controllers(group)
    except OSError:
        leaf = group / "sandpit-supervisor"
        leaf.mkdir(exist_ok=True)
        for pid in (group / "cgroup.procs").read_text().split():
            with contextlib.suppress(ProcessLookupError):
                write(leaf / "cgroup.procs", pid)
        enable_controllers(group)
    return group


def choose_limiter(wanted: Literal["auto", "cgroup", "rlimit"], slots: int = 1) -> Limiter:
    """The best limiter this host allows, or the one the operator asked for."""
    # Without a cgroup, the process limit is per uid: each slot's zygote chains (A, G, H) count in it.
    shared = 3 * slots
    if wanted == "rlimit":
        return RlimitLimiter("set by SANDPIT_SANDBOX_LIMITS", shared)
    try:
        limiter = cgroup_limiter()
    except OSError as exc:
        if wanted == "cgroup":
            raise
        return RlimitLimiter(f"no writable cgroup: {exc}", shared)
    return limiter


def cgroup_limiter() -> Limiter:
    mounts, own = cgroup_mounts(), own_cgroups()
    if all(name in mounts for name in V1_CONTROLLERS):
        parents = {name: mounts[name].directory_of(own.get(name, "/")) for name in V1_CONTROLLERS}
        for name in V1_OPTIONAL:
            parent = mounts[name].directory_of(own.get(name, "/")) if name in mounts else None
            if parent is not None and os.access(parent, os.W_OK) and parent not in parents.values():
                parents[name] = parent
        limiter: Limiter = CgroupV1Limiter(parents)
    elif "" in mounts:
        limiter = CgroupV2Limiter(v2_parent(mounts[""].directory_of(own.get("", "/"))))
    else:
        raise OSError("no cgroup v1 memory, pids and cpuacct hierarchies and no cgroup2 mount")
    try:
        limiter.group("probe").prepare(Budget(64 << 20, 1, 8, 8, 1 << 20))
    except OSError:
        limiter.close()
        raise
    return limiter
