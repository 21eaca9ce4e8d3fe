"""The warm zygotes serve every slot of a worker at once: real bubblewrap sandboxes, real cgroups.

Each slot's calls run in their own pid namespace under the shared zygote, with only their own
workspace in view; a call cancelled in one slot dies alone, before its slot is given back, and the
others run on; a zygote that dies starts again. Under the rlimit fallback, a call's address-space budget
comes on top of the image it has mapped.
"""

from __future__ import annotations

import asyncio
import os
import resource
import signal
import subprocess
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from service import metrics
from service.bench.slots import job
from service.models import ExecutionResult, Status
from service.sandbox.executor import Sandbox, group_name
from service.sandbox.zygote import ZygoteFailed
from tests.compat.runs import PYTHON, SANDBOX_DIR
from tests.sandbox.warm import warm_sandbox

pytestmark = pytest.mark.timeout(120)

# argv: the directory of zygote_server. Prints what the call's process would take for the address space
# in use, then the kernel's VmSize of the same process.
ADDRESS_SPACE = """
import os, sys
sys.path.insert(0, sys.argv[1])
import zygote_server
measured = zygote_server.address_space_in_use()
fd = os.open("/proc/self/status", os.O_RDONLY)
status = os.read(fd, 1 << 16).decode()
os.close(fd)
vm_size = next(line for line in status.splitlines() if line.startswith("VmSize:"))
print(measured, int(vm_size.split()[1]) * 1024)
"""


def warm_launches() -> float:
    value = metrics.WORKER.get_sample_value("sandpit_sandbox_launch_seconds_count", {"path": "warm"})
    return value or 0.0


@pytest_asyncio.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with warm_sandbox(64) as box:
        yield box


async def test_calls_in_many_slots_run_at_once_in_one_zygote(sandbox: Sandbox) -> None:
    assert sandbox.zygotes is not None
    zygote_pids = [zygote.process.pid if zygote.process else None for zygote in sandbox.zygotes.lean]
    before = warm_launches()
    code = "import time\nstart = time.time()\ntime.sleep(1)\nprint(start, time.time())"
    results = await asyncio.gather(*(sandbox.execute(job(code), slot) for slot in range(40)))
    assert all(result.status == Status.ok for result in results), [r.stderr for r in results]
    spans = [tuple(map(float, result.stdout.split())) for result in results]
    # Every call had started before the first one ended: forty 1 s sleeps ran side by side.
    assert max(start for start, _ in spans) < min(end for _, end in spans)
    assert warm_launches() - before == 40
    assert [zygote.process.pid if zygote.process else None for zygote in sandbox.zygotes.lean] == zygote_pids


async def test_a_call_sees_its_own_workspace_and_no_other_slot(sandbox: Sandbox) -> None:
    (sandbox.workspaces.path(7) / "secret.txt").write_text("slot seven")
    code = (
        "import os\n"
        "print(sorted(os.listdir('/workspace')))\n"
        "try:\n    print(os.listdir('/slots'))\nexcept OSError as error:\n    print(type(error).__name__)\n"
        "print(os.path.exists('/slots/slot-7/secret.txt'))"
    )
    result = await sandbox.execute(job(code), 8)
    assert result.status == Status.ok, result.stderr
    own, slots, reachable = result.stdout.splitlines()
    assert own == "['main.py']"
    assert slots in ("[]", "PermissionError", "FileNotFoundError")
    assert reachable == "False"


async def test_a_cancelled_call_dies_alone_before_its_slot_is_free(sandbox: Sandbox) -> None:
    assert sandbox.zygotes is not None
    lean = sandbox.zygotes.lean_for(1)
    writer = "import time\nwhile True:\n    open('beat', 'a').write('x')\n    time.sleep(0.01)\n"
    neighbour = asyncio.create_task(sandbox.execute(job("import time\ntime.sleep(1.5)\nprint('done')"), 2))
    cancelled = asyncio.create_task(sandbox._execute_in(sandbox.workspaces.path(1), job(writer), 1))
    await asyncio.sleep(0.7)
    zygote_pid = lean.process.pid if lean.process else None
    beat = sandbox.workspaces.path(1) / "beat"
    assert beat.stat().st_size > 0
    cancelled.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    # Gone by the time the cancel returned: the file stops growing at once.
    size = beat.stat().st_size
    await asyncio.sleep(0.3)
    assert beat.stat().st_size == size
    neighbour_result: ExecutionResult = await neighbour
    assert neighbour_result.status == Status.ok and neighbour_result.stdout == "done\n"
    assert lean.process is not None and lean.process.pid == zygote_pid, "the cancel restarted the zygote"
    sandbox.workspaces.wipe(1)
    again = await sandbox.execute(job("print('slot one again')"), 1)
    assert again.stdout == "slot one again\n"


CGROUP = "print(open('/proc/self/cgroup').read())"


def opens_of_group(sandbox: Sandbox, name: str) -> list[int]:
    """Count the descriptor sets opened for the group `name` from now on (one entry per open)."""
    group = sandbox.limiter.group(name)
    opened: list[int] = []
    join_fds = group.join_fds

    def counted() -> list[int]:
        fds = join_fds()
        opened.append(len(fds))
        return fds

    group.join_fds = counted  # type: ignore[method-assign]
    return opened


def in_group(result: ExecutionResult, name: str) -> bool:
    """Every hierarchy the limiter uses puts the call in `name`; so does the group's CPU counter."""
    lines = [line for line in result.stdout.split() if line.split(":")[1:2] in (["memory"], ["pids"], ["cpuacct"])]
    return len(lines) == 3 and all(line.endswith(f"/{name}") for line in lines) and (result.cpu_ms or 0) > 0


async def test_a_slot_sends_its_cgroup_once_and_each_of_its_namespaces_joins_it(sandbox: Sandbox) -> None:
    """The zygote keeps the slot's cgroup descriptors from when the worker made the slot's namespace at
    start: calls carry only their pipes, and a namespace made again (after a cancel dropped the slot's)
    still joins the slot's group."""
    assert sandbox.zygotes is not None and sandbox.limiter.mode == "cgroup_v1"
    opened = opens_of_group(sandbox, "slot-5-lean")
    first = await sandbox.execute(job(CGROUP), 5)
    second = await sandbox.execute(job(CGROUP), 5)
    looping = asyncio.create_task(sandbox.execute(job("while True:\n    pass\n"), 5))
    await asyncio.sleep(0.5)
    looping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await looping
    remade = await sandbox.execute(job(CGROUP), 5)
    assert [in_group(result, "slot-5-lean") for result in (first, second, remade)] == [True, True, True]
    assert opened == []


async def test_a_restarted_zygote_is_sent_the_slot_cgroup_again(sandbox: Sandbox) -> None:
    assert sandbox.zygotes is not None
    lean = sandbox.zygotes.lean_for(6)
    assert lean.process is not None
    opened = opens_of_group(sandbox, "slot-6-lean")
    assert in_group(await sandbox.execute(job(CGROUP), 6), "slot-6-lean")
    os.killpg(lean.process.pid, signal.SIGKILL)
    for _ in range(100):
        if lean.control is None:
            break
        await asyncio.sleep(0.05)
    before = warm_launches()
    assert in_group(await sandbox.execute(job(CGROUP), 6), "slot-6-lean")
    assert warm_launches() - before == 1
    # None for the first call (sent when the namespace was made at start), then once to the restarted zygote.
    assert len(opened) == 1 and opened[0] > 0


# A syscall of each part of the policy: unshare from the call's own filter, personality (here only a
# query of the current one, which nothing else refuses) from the filter its init loaded.
BOTH_FILTERS = """
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
print(libc.unshare(0x10000000), ctypes.get_errno())
print(libc.personality(0xFFFFFFFF), ctypes.get_errno())
print([line.split() for line in open('/proc/self/status') if line.startswith('Seccomp')])
"""


async def test_a_warm_call_runs_under_the_whole_seccomp_policy_in_two_filters(sandbox: Sandbox) -> None:
    """The slot's init loads the policy less `mount` and `unshare`, which the call's process adds itself
    once its namespaces are made: the program meets both."""
    for slot in (9, 9, 10):
        result = await sandbox.execute(job(BOTH_FILTERS), slot)
        assert result.status == Status.ok, result.stderr
        unshare, personality, status = result.stdout.splitlines()
        assert unshare == personality == "-1 1"  # EPERM
        assert status == "[['Seccomp:', '2'], ['Seccomp_filters:', '2']]"


async def test_a_zygote_that_dies_starts_again_on_the_next_call(sandbox: Sandbox) -> None:
    assert sandbox.zygotes is not None
    lean = sandbox.zygotes.lean_for(3)
    assert lean.process is not None
    os.killpg(lean.process.pid, signal.SIGKILL)
    # The zygote's reader notices; the next call starts a fresh zygote and runs warm in it.
    for _ in range(100):
        if lean.control is None:
            break
        await asyncio.sleep(0.05)
    before = warm_launches()
    result = await sandbox.execute(job("print(6 * 7)"), 3)
    assert result.status == Status.ok and result.stdout == "42\n"
    assert warm_launches() - before == 1


async def test_a_call_past_its_deadline_is_killed_and_answered_by_its_zygote(sandbox: Sandbox) -> None:
    """The slot's init reports the time-out itself: the call is not run again cold."""
    before = warm_launches()
    result = await sandbox.execute(job("while True:\n    pass\n", timeout_s=0.5), 2)
    assert result.status == Status.timeout
    assert warm_launches() - before == 1
    # The slot's namespace survived its time-out: the next call runs in it.
    result = await sandbox.execute(job("print(42)"), 2)
    assert result.status == Status.ok and result.stdout == "42\n"


# The main thread leaves (SYS_exit, not exit_group) while another thread loops: the process is not over.
MAIN_THREAD_LEAVES = """
import ctypes, threading

def spin():
    while True:
        pass

threading.Thread(target=spin).start()
ctypes.CDLL(None).syscall(60, 0)
"""


async def test_a_call_whose_main_thread_left_while_another_loops_is_a_timeout(sandbox: Sandbox) -> None:
    """Its first thread is in its exit at the deadline, but not every thread: the program still runs."""
    result = await sandbox.execute(job(MAIN_THREAD_LEAVES, timeout_s=0.5), 5)
    assert result.status == Status.timeout


SHM_SIZE = "import os\nst = os.statvfs('/dev/shm')\nprint(st.f_blocks * st.f_frsize)\n"


async def test_a_call_gets_the_dev_shm_size_its_request_asks_for_and_the_next_one_the_default(
    sandbox: Sandbox,
) -> None:
    """The call's process resizes the slot's /dev/shm for its request; the next call's puts it back."""
    assert sandbox.zygotes is not None
    lean = sandbox.zygotes.lean_for(3)
    default = lean.tmp_bytes
    seen = []
    for size in (default, 8 << 20, 8 << 20, default):
        lean.tmp_bytes = size
        try:
            result = await sandbox.execute(job(SHM_SIZE), 3)
        finally:
            lean.tmp_bytes = default
        assert result.status == Status.ok, result.stderr
        seen.append(int(result.stdout))
    assert seen == [default, 8 << 20, 8 << 20, default]


async def test_a_call_whose_process_fails_before_its_program_starts_fails_alone(sandbox: Sandbox) -> None:
    """Its process ends before it takes the program's stage (here: limits it cannot set): the call is
    a sandbox failure (run cold by the executor), and the slot's next call runs warm in a new
    namespace, not on a request left over."""
    assert sandbox.zygotes is not None
    slot = 4
    lean = sandbox.zygotes.lean_for(slot)
    await sandbox.execute(job("print(1)"), slot)

    def join_fds() -> list[int]:
        return sandbox.limiter.group(group_name(slot, "lean")).join_fds()

    impossible = [(resource.RLIMIT_NOFILE, 64, 32)]
    with pytest.raises(ZygoteFailed, match="could not be set up"):
        await lean.run(slot, join_fds, [PYTHON, "-B", "main.py"], b"", 5.0, 1024, impossible)
    # (The first may still meet the ended namespace and run cold.)
    for _ in range(2):
        result = await sandbox.execute(job("print(42)"), slot)
        assert result.status == Status.ok and result.stdout == "42\n"
    before = warm_launches()
    result = await sandbox.execute(job("print(43)"), slot)
    assert result.status == Status.ok and result.stdout == "43\n"
    assert warm_launches() - before == 1


# argv: the directory of zygote_server. A zygote loop over four slots' namespaces (stand-ins: only
# what the loop reads of them) at one moment: which it drops, with what answer, and when it looks again.
EXPIRY = """
import socket, sys, time
sys.path.insert(0, sys.argv[1])
import zygote_server

class Namespace:
    def __init__(self, slot, call_id, deadline, last_used):
        self.slot, self.call_id, self.deadline, self.last_used = slot, call_id, deadline, last_used

idle = float(sys.argv[2]) if sys.argv[2] != "keep" else None
now = time.monotonic()
server = zygote_server.Server(socket.socketpair()[0], None, idle)
dropped = []
server._drop = lambda namespace, answer=None: dropped.append((namespace.slot, answer))
server.namespaces = {
    0: Namespace(0, 7, now - 1, now - 5),
    1: Namespace(1, 8, now + 50, now - 5),
    2: Namespace(2, None, 0.0, now - 601),
    3: Namespace(3, None, 0.0, now - 570),
}
server._expire()
print(sorted((slot, answer and zygote_server.protocol.encode(answer).decode()) for slot, answer in dropped))
print(round(server.next_check - now))
"""


def expire(idle: str) -> tuple[str, int]:
    done = subprocess.run(
        [PYTHON, "-I", "-B", "-c", EXPIRY, str(SANDBOX_DIR), idle],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    dropped, next_check = done.stdout.splitlines()
    return dropped, int(next_check)


def test_the_zygote_drops_namespaces_past_their_deadline_or_idle_and_looks_again_at_the_next_due() -> None:
    dropped, next_check = expire("600")
    assert dropped == """[(0, '{"id": 7, "timed_out": true, "signal": 9}'), (2, None)]"""
    # Slot 3 goes idle in 30 s, before slot 1's call is due (50 s).
    assert next_check == 30


def test_a_zygote_told_to_keep_idle_namespaces_drops_only_calls_past_their_deadline() -> None:
    dropped, next_check = expire("keep")
    assert dropped == """[(0, '{"id": 7, "timed_out": true, "signal": 9}')]"""
    assert next_check == 50


# argv: the directory of zygote_server. Whether `is_exiting` sees a process that runs, one whose exit is
# under way (it unmaps 1 GiB it filled, which takes a while), and one whose main thread left (SYS_exit)
# while another thread loops.
EXITING = """
import os, select, subprocess, sys, time
sys.path.insert(0, sys.argv[1])
import zygote_server

FILL_THEN_EXIT = "import os, sys\\nx = bytearray(b'x') * (1 << 30)\\nprint(flush=True)\\nsys.stdin.read()\\nos._exit(0)"
child = subprocess.Popen([sys.executable, "-c", FILL_THEN_EXIT], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
child.stdout.readline()
running = zygote_server.is_exiting(child.pid)
pidfd = os.pidfd_open(child.pid)
child.stdin.close()
exiting = False
while not select.select([pidfd], [], [], 0)[0]:
    exiting = exiting or zygote_server.is_exiting(child.pid)
child.wait()

SPIN_AFTER_MAIN = (
    "import ctypes, threading\\nthreading.Thread(target=lambda: [0 for _ in iter(int, 1)]).start()\\n"
    "print(flush=True)\\nctypes.CDLL(None).syscall(60, 0)"
)
child = subprocess.Popen([sys.executable, "-c", SPIN_AFTER_MAIN], stdout=subprocess.PIPE)
child.stdout.readline()
time.sleep(0.2)
main_left = zygote_server.is_exiting(child.pid)
child.kill()
child.wait()
print(running, exiting, main_left)
"""


def test_a_process_is_exiting_once_every_thread_of_it_is_in_its_exit() -> None:
    """What the slot's init reads at a call's deadline: a call whose process is already in its exit
    ended in time (its teardown can wait seconds on kernel locks that every process shares)."""
    done = subprocess.run(
        [PYTHON, "-I", "-B", "-c", EXITING, str(SANDBOX_DIR)], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.split() == ["False", "True", "False"]


# argv: the directory of zygote_server. Whether `is_starved` sees a process that wants a CPU (a spinning
# one, under a bound of CPU it has not reached and one it has passed) and one that sleeps.
STARVED = """
import subprocess, sys, time
sys.path.insert(0, sys.argv[1])
import zygote_server

HOUR_NS, MS_NS = 3_600 * 10**9, 10**6
spinner = subprocess.Popen([sys.executable, "-c", "print(flush=True)\\nwhile True: pass"], stdout=subprocess.PIPE)
spinner.stdout.readline()
time.sleep(0.3)
spinning = zygote_server.is_starved(spinner.pid, HOUR_NS), zygote_server.is_starved(spinner.pid, MS_NS)
spinner.kill()
spinner.wait()
SLEEP = "import time\\nprint(flush=True)\\ntime.sleep(60)"
sleeper = subprocess.Popen([sys.executable, "-c", SLEEP], stdout=subprocess.PIPE)
sleeper.stdout.readline()
time.sleep(0.3)
sleeping = zygote_server.is_starved(sleeper.pid, HOUR_NS)
sleeper.kill()
sleeper.wait()
print(*spinning, sleeping, zygote_server.is_starved(sleeper.pid, HOUR_NS))
"""


def test_a_process_is_starved_while_it_wants_a_cpu_and_has_had_little() -> None:
    """What the slot's init reads at a call's deadline: a call that still wants a CPU (runnable, or
    waiting in the kernel) and has had less than the bound of it was starved by a busy machine, and gets
    its overtime; a program that has had more (a loop), or that sleeps, or is gone, does not."""
    done = subprocess.run(
        [PYTHON, "-I", "-B", "-c", STARVED, str(SANDBOX_DIR)], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.split() == ["True", "False", "False", "False"]


# argv: the directory of zygote_server. The starved bound for a call set up in 0.6 ms (a fast machine's),
# in 2.5 ms (a slower one's: CI's VM when a trivial call among 400 loops took 5.4 ms) and in 10 ms.
STARVED_BOUND = """
import sys
sys.path.insert(0, sys.argv[1])
import zygote_server

print(*(zygote_server.starved_below_ns(round(setup_ms * 10**6)) for setup_ms in (0.6, 2.5, 10)))
"""


def test_the_starved_bound_grows_with_what_the_calls_set_up_took_on_this_machine() -> None:
    """A slower machine's trivial call takes more CPU by its deadline: the bound is then three times
    what the call's own set-up took, never under the fast machine's 5 ms."""
    done = subprocess.run(
        [PYTHON, "-I", "-B", "-c", STARVED_BOUND, str(SANDBOX_DIR)],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert [int(bound) for bound in done.stdout.split()] == [5_000_000, 7_500_000, 30_000_000]


def test_the_address_space_a_call_budgets_on_top_of_is_its_vmsize() -> None:
    """Under the rlimit fallback, a call's RLIMIT_AS is its budget plus what the warm image has mapped."""
    done = subprocess.run(
        [PYTHON, "-I", "-B", "-c", ADDRESS_SPACE, str(SANDBOX_DIR)], capture_output=True, check=True, timeout=60
    )
    measured, vm_size = map(int, done.stdout.split())
    # Read one after the other: only what the interpreter mapped in between may differ.
    assert abs(measured - vm_size) < 1 << 20
