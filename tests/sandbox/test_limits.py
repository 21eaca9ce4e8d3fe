"""The limiters on this host's real kernel: a process that joins a slot's cgroup is limited and
measured there; the rlimit fallback keeps threads working. No namespaces here: only the limits."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from service.config import load_settings
from service.sandbox.executor import CROWD_HALVINGS, FAVOURED_CPU_MS, Sandbox
from service.sandbox.limits import (
    V1_SHARES,
    Budget,
    CgroupMount,
    CgroupV1Limiter,
    Limiter,
    LimitMode,
    RlimitLimiter,
    Standing,
    V2Group,
    cgroup_mounts,
    choose_limiter,
    own_cgroups,
)
from service.sandbox.process import Confinement
from tests.calls import HOST_HAS_CGROUP_V1

MB = 1024 * 1024
BUDGET = Budget(memory_bytes=128 * MB, cpu_seconds=10, max_processes=32, max_open_files=64, max_file_bytes=MB)
needs_cgroup_v1 = pytest.mark.skipif(
    not HOST_HAS_CGROUP_V1, reason="needs root and the cgroup v1 memory, pids and cpuacct hierarchies"
)


@pytest.fixture
def limiter() -> Iterator[Limiter]:
    chosen = choose_limiter("auto")
    yield chosen
    chosen.close()


def run_joined(limiter: Limiter, budget: Budget, code: str) -> subprocess.CompletedProcess[bytes]:
    group = limiter.group("slot-0")
    group.prepare(budget)
    confinement = Confinement(limiter.rlimits(budget), group.join_fds())
    return subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60, preexec_fn=confinement.apply)


def test_a_root_worker_on_a_cgroup_v1_host_gets_cgroups(limiter: Limiter) -> None:
    if not HOST_HAS_CGROUP_V1:
        assert limiter.mode in {LimitMode.cgroup_v2, LimitMode.rlimit}
        return
    assert limiter.mode == LimitMode.cgroup_v1
    assert limiter.describe().startswith("cgroup_v1")
    # Under a cgroup the address space is not limited, so threads and big runtimes work.
    kinds = {kind for kind, _, _ in limiter.rlimits(BUDGET)}
    assert resource.RLIMIT_AS not in kinds and resource.RLIMIT_NPROC not in kinds


@needs_cgroup_v1
def test_usage_counts_the_whole_tree(limiter: Limiter) -> None:
    code = (
        "import os\n"
        "pid = os.fork()\n"
        "if pid == 0:\n"
        "    block = bytearray(60 * 2**20)\n"
        "    sum(range(3_000_000))\n"
        "    os._exit(0)\n"
        "os.waitpid(pid, 0)\n"
    )
    done = run_joined(limiter, BUDGET, code)
    assert done.returncode == 0, done.stderr
    usage = limiter.group("slot-0").usage()
    assert usage.oom_killed is False
    assert usage.peak_memory_kb is not None and usage.peak_memory_kb >= 60 * 1024
    assert usage.cpu_ms is not None and usage.cpu_ms > 10


@needs_cgroup_v1
def test_memory_past_the_limit_is_an_oom_kill_in_the_group(limiter: Limiter) -> None:
    done = run_joined(limiter, BUDGET, "block = bytearray(400 * 2**20)")
    assert done.returncode == -signal.SIGKILL
    usage = limiter.group("slot-0").usage()
    assert usage.oom_killed is True
    # The next call in the same slot starts with a clean count.
    done = run_joined(limiter, BUDGET, "print('fine')")
    assert done.returncode == 0
    assert limiter.group("slot-0").usage().oom_killed is False


@needs_cgroup_v1
def test_a_group_measures_each_of_its_calls_on_its_own(limiter: Limiter) -> None:
    """The group's counter files stay open from call to call; each call still reads only its own."""
    group = limiter.group("slot-0")
    done = run_joined(limiter, BUDGET, "block = bytearray(90 * 2**20)\nsum(range(10_000_000))")
    assert done.returncode == 0, done.stderr
    big = group.usage()
    done = run_joined(limiter, BUDGET, "block = bytearray(20 * 2**20)")
    assert done.returncode == 0, done.stderr
    small = group.usage()
    assert big.peak_memory_kb is not None and small.peak_memory_kb is not None
    assert big.peak_memory_kb >= 90 * 1024
    assert 20 * 1024 <= small.peak_memory_kb < 90 * 1024
    assert big.cpu_ms is not None and small.cpu_ms is not None
    assert 0 < small.cpu_ms < big.cpu_ms


@needs_cgroup_v1
def test_a_closed_limiter_holds_no_descriptor_of_its_groups() -> None:
    def open_fds() -> set[str]:
        return {entry.name for entry in Path("/proc/self/fd").iterdir()}

    before = open_fds()
    limiter = choose_limiter("cgroup")
    for slot in range(3):
        group = limiter.group(f"slot-{slot}")
        group.prepare(BUDGET)
        group.usage()
        for fd in group.join_fds():
            os.close(fd)
    assert open_fds() - before
    limiter.close()
    assert open_fds() - before == set()


def test_a_v2_group_reads_each_calls_counters_afresh(tmp_path: Path) -> None:
    """cgroup v2's files as plain files (this host has v1): the group keeps them open from call to call
    and still reads every call's counters anew, each call from its own `prepare`."""
    files = {
        "memory.current": "1000\n",
        "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n",
        "cpu.stat": "usage_usec 5000\nuser_usec 1\n",
        "cpu.weight": "100\n",
        "memory.max": "max\n",
        "pids.max": "max\n",
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    group = V2Group(tmp_path)
    try:
        group.prepare(BUDGET)
        assert (tmp_path / "memory.max").read_text() == str(BUDGET.memory_bytes)
        (tmp_path / "cpu.stat").write_text("usage_usec 12000\n")
        (tmp_path / "memory.events").write_text("oom_kill 1\n")
        usage = group.usage()
        assert (usage.cpu_ms, usage.oom_killed, usage.peak_memory_kb) == (7.0, True, None)
        group.prepare(BUDGET)
        usage = group.usage()
        assert (usage.cpu_ms, usage.oom_killed) == (0.0, False)
    finally:
        group.close()


@needs_cgroup_v1
def test_processes_past_pids_max_cannot_start(limiter: Limiter) -> None:
    code = (
        "import os, time\n"
        "children = []\n"
        "try:\n"
        "    for _ in range(100):\n"
        "        pid = os.fork()\n"
        "        if pid == 0:\n"
        "            time.sleep(5)\n"
        "            os._exit(0)\n"
        "        children.append(pid)\n"
        "except BlockingIOError:\n"
        "    print(len(children))\n"
        "for pid in children:\n"
        "    os.kill(pid, 9)\n"
    )
    done = run_joined(limiter, BUDGET, code)
    assert done.returncode == 0, done.stderr
    # pids.max counts the parent too.
    assert int(done.stdout) == BUDGET.max_processes - 1


@needs_cgroup_v1
def test_groups_are_made_once_and_removed_on_close() -> None:
    limiter = choose_limiter("cgroup")
    assert isinstance(limiter, CgroupV1Limiter)
    first = limiter.group("slot-3")
    assert limiter.group("slot-3") is first
    bases = list(limiter.bases.values())
    assert all((base / "slot-3").is_dir() for base in bases)
    limiter.close()
    assert not any(base.exists() for base in bases)


@needs_cgroup_v1
def test_a_demoted_group_keeps_a_small_weight_not_sched_idle() -> None:
    """A call past its favoured CPU drops to the least cpu.shares, near its deadline rises to the ending
    weight, and its next call starts at a peer's again; it is never made SCHED_IDLE (an idle call
    preempted in the kernel stalls RCU, and every cgroup attach with it)."""
    limiter = choose_limiter("cgroup")
    assert isinstance(limiter, CgroupV1Limiter)
    try:
        if "cpu" not in limiter.bases:
            pytest.skip("no writable v1 cpu hierarchy here")
        group = limiter.group("slot-0")
        cpu = limiter.bases["cpu"] / "slot-0"
        assert (cpu / "cpu.shares").read_text().strip() == str(V1_SHARES[Standing.young])
        group.weigh(Standing.long)
        assert (cpu / "cpu.shares").read_text().strip() == str(V1_SHARES[Standing.long])
        if (cpu / "cpu.idle").exists():
            assert (cpu / "cpu.idle").read_text().strip() == "0"
        group.weigh(Standing.ending)
        assert (cpu / "cpu.shares").read_text().strip() == str(V1_SHARES[Standing.ending])
        group.weigh(Standing.young)
        assert (cpu / "cpu.shares").read_text().strip() == str(V1_SHARES[Standing.young])
        # The CPU counter the sweeper reads through one open descriptor counts the call since `prepare`.
        done = run_joined(limiter, BUDGET, "sum(range(5_000_000))")
        assert done.returncode == 0, done.stderr
        assert group.cpu_used_ms() > 10
    finally:
        limiter.close()


@needs_cgroup_v1
def test_near_its_deadline_only_a_demoted_call_changes_weight(tmp_path: Path) -> None:
    """The raise before a deadline is for demoted calls (least weight to ending); a call still young, a
    short one that a busy machine held to its deadline, has its full weight and leaves the sweep,
    rather than dropping to the ending weight and waiting behind hundreds of young calls to exit."""
    box = Sandbox(load_settings(worker_concurrency=2, workspace_root=tmp_path / "ws", sandbox_limits="cgroup"))
    try:
        if "cpu" not in box.limiter.bases:
            pytest.skip("no writable v1 cpu hierarchy here")
        young, demoted = box.limiter.group("slot-0-lean"), box.limiter.group("slot-1-lean")
        shares = [box.limiter.bases["cpu"] / name / "cpu.shares" for name in ("slot-0-lean", "slot-1-lean")]
        box.favoured[0] = young
        # Halved by a crowd (see the test below): it gets its full weight back.
        young.weigh(Standing.young, 3)
        assert shares[0].read_text().strip() == str(V1_SHARES[Standing.young] >> 3)
        demoted.weigh(Standing.long)
        box._promote(0, young)
        box._promote(1, demoted)
        assert shares[0].read_text().strip() == str(V1_SHARES[Standing.young])
        assert shares[1].read_text().strip() == str(V1_SHARES[Standing.ending])
        assert box.favoured == {}
    finally:
        box.close()


def spend_cpu_in(limiter: CgroupV1Limiter, name: str, at_least_ms: float) -> None:
    """Run a spinning process in the group (each of its hierarchies) until the group counts that much CPU."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        for path in dict.fromkeys(base / name for base in limiter.bases.values()):
            (path / "cgroup.procs").write_text(str(spinner.pid))
        give_up = time.monotonic() + 10
        while limiter.group(name).cpu_used_ms() < at_least_ms:
            assert spinner.poll() is None
            assert time.monotonic() < give_up, f"the group never counted {at_least_ms} ms of the spinner's CPU"
    finally:
        spinner.kill()
        spinner.wait()


@needs_cgroup_v1
def test_among_a_crowd_of_young_calls_the_least_served_weigh_most(tmp_path: Path) -> None:
    """More young calls than the machine serves promptly: each weighs half as much for every ms of CPU it
    has had, so a new call among hundreds of loops is not one of hundreds; fewer, and all weigh the same
    again. A call past its favoured share is demoted either way."""
    box = Sandbox(load_settings(worker_concurrency=3, workspace_root=tmp_path / "ws", sandbox_limits="cgroup"))
    try:
        limiter = box.limiter
        if not isinstance(limiter, CgroupV1Limiter) or "cpu" not in limiter.bases:
            pytest.skip("no writable v1 cpu hierarchy here")
        names = ("slot-0-lean", "slot-1-lean", "slot-2-lean")
        groups = [limiter.group(name) for name in names]
        for group in groups:
            group.prepare(BUDGET)
        spend_cpu_in(limiter, names[0], 3.0)
        spend_cpu_in(limiter, names[2], FAVOURED_CPU_MS + 1)
        shares = [limiter.bases["cpu"] / name / "cpu.shares" for name in names]
        served = int(groups[0].cpu_used_ms())
        box.favoured = dict(enumerate(groups))
        box.crowded_above = 2
        box.sweep_once()
        assert shares[0].read_text().strip() == str(V1_SHARES[Standing.young] >> min(served, CROWD_HALVINGS))
        assert shares[1].read_text().strip() == str(V1_SHARES[Standing.young])
        assert shares[2].read_text().strip() == str(V1_SHARES[Standing.long])
        assert set(box.favoured) == {0, 1}
        # The demoted one gone, two young calls are no longer more than 2: they weigh the same.
        box.sweep_once()
        assert shares[0].read_text().strip() == str(V1_SHARES[Standing.young])
    finally:
        box.close()


@needs_cgroup_v1
def test_groups_of_dead_workers_are_removed_at_start() -> None:
    memory = cgroup_mounts()["memory"].directory_of(own_cgroups()["memory"])
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = memory / f"sandpit-{dead.pid}" / "slot-0"
    stale.mkdir(parents=True)
    limiter = choose_limiter("cgroup")
    try:
        assert not stale.parent.exists()
    finally:
        limiter.close()


def test_the_rlimit_fallback_keeps_threads_working() -> None:
    # 64 MiB of address space per thread arena would end this at the 7th thread without MALLOC_ARENA_MAX.
    fallback = RlimitLimiter("test")
    budget = Budget(256 * MB, 10, 64, 64, MB)
    code = (
        "from concurrent.futures import ThreadPoolExecutor\n"
        "with ThreadPoolExecutor(16) as pool:\n"
        "    print(sum(pool.map(lambda n: len(bytearray(n * 1000)), range(200))))\n"
    )
    confinement = Confinement(fallback.rlimits(budget))
    env = {**os.environ, **fallback.env()}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, timeout=60, preexec_fn=confinement.apply, env=env
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == sum(n * 1000 for n in range(200))
    assert fallback.mode == LimitMode.rlimit
    assert {kind for kind, _, _ in fallback.rlimits(budget)} >= {resource.RLIMIT_AS, resource.RLIMIT_NPROC}


def test_asking_for_rlimits_never_touches_cgroups(tmp_path: Path) -> None:
    limiter = choose_limiter("rlimit")
    assert limiter.mode == LimitMode.rlimit
    assert limiter.group("slot-0").join_fds() == []
    assert limiter.group("slot-0").usage().oom_killed is None


@pytest.mark.parametrize(
    ("root", "group", "directory"),
    [
        # A host: the whole hierarchy is mounted, groups are found by their full path.
        ("/", "/process_api/abc", "/sys/fs/cgroup/memory/process_api/abc"),
        # A container of a cgroup v1 host: its own group is mounted as the root, /proc names the full path.
        ("/docker/abc", "/docker/abc", "/sys/fs/cgroup/memory"),
        ("/docker/abc", "/docker/abc/sandpit", "/sys/fs/cgroup/memory/sandpit"),
        # A private cgroup namespace: /proc names groups from the namespace's root.
        ("/", "/", "/sys/fs/cgroup/memory"),
    ],
)
def test_groups_are_found_under_the_mounted_root(root: str, group: str, directory: str) -> None:
    assert CgroupMount(Path("/sys/fs/cgroup/memory"), root).directory_of(group) == Path(directory)
