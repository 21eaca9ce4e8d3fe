"""The warm zygote: a pre-started interpreter that forks each call into its own namespaces.

Runs inside a long-lived bubblewrap sandbox of the worker (own user and net namespace, read-only
root, every slot's workspace under /slots), in the sandbox's interpreter, with the heavy modules
already imported. Standard library and `seccomp` only: it never imports the service. One zygote
serves every slot of its worker at once; its processes, per slot that has had a call:

    zygote ── A: made a new pid and mount namespace with the slot's workspace at /workspace (and
              │  /slots gone), waits for G; dies with the zygote
              └─ G: pid 1 of that namespace for the slot's calls, one after another; own /proc;
                 │     under the seccomp policy less `mount` and `unshare`
                 └─ H: one per call, forked by G *before* the call arrives; while it waits it
                       enters its own ipc namespace. When the call comes, H takes
                       its stdin/stdout/stderr and limits, drops every capability, adds the rest of the
                       seccomp policy and runs the program (Python in-process from the warm image,
                       anything else by exec)

The worker sends one request per call on the control socket (a small JSON message plus the three pipe
ends and, the first time it sends this zygote a call of the slot, the slot's cgroup descriptors, which
the zygote keeps: each namespace it makes for the slot, now or after one was dropped, joins it). The
zygote passes it on the slot's request socket straight to the waiting H (as `marshal`: the same
interpreter is at both ends); H tells G, on a pipe, when the program starts and its timeout. (G, whose
every page the waiting H shares, does as little as it can per call: each page it writes is a
copy-on-write fault.) G enforces the deadline, then kills and reaps every other process of its
namespace (whatever the call left running: daemons, setsid, double forks) and only then reports H's
exit status, so nothing of a call outlives its answer. The status comes from G, which the call cannot
reach (pid 1 ignores its signals, and is not dumpable), never from the call itself. The zygote waits
on all slots at once, so a slot's looping call holds nothing but its own slot. A cancelled call's
namespace is killed, and the zygote answers only once its G (and so every process of the namespace:
the kernel empties a pid namespace before its init is gone) has exited. A namespace idle for a while
is dropped and made again on its slot's next call.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import os
import resource
import select
import selectors
import signal
import socket
import stat
import struct
import sys
import time
from typing import TYPE_CHECKING, NamedTuple

# Its siblings, found beside it, whatever the interpreter's flags put on sys.path. (os.path, not
# pathlib, and NamedTuple, not dataclasses: every module the zygote imports is resident in each call's
# fork, whose copy and teardown cost grows with it; those two would bring in pathlib, inspect and ast.)
sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))  # noqa: PTH120
if TYPE_CHECKING:
    from service.sandbox import zygote_protocol as protocol
    from service.sandbox.python_main import find_recursion_counters, make_pipe_streams, prepare, run_python
    from service.sandbox.warm_up import warm_up
else:
    import zygote_protocol as protocol
    from python_main import find_recursion_counters, make_pipe_streams, prepare, run_python
    from warm_up import warm_up

CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REC, MS_PRIVATE = 2, 4, 8, 0x4000, 0x40000
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_SECCOMP = 1, 4, 22
SECCOMP_MODE_FILTER, SOCK_FILTER_SIZE = 2, 8
LINUX_CAPABILITY_VERSION_3 = 0x20080522
EXIT_SETUP_FAILED = 125
# How long past a call's deadline the zygote waits for its init's report before replacing the init.
INIT_GRACE_S = 10.0
# How long past its deadline G waits for a call whose process had already begun to exit then (see
# `is_exiting`), or that the machine had starved of CPU (see `is_starved`), to be gone, before it
# counts as a timeout after all. Under INIT_GRACE_S.
OVERTIME_S = 5.0
# A call whose process has had less CPU than this by its deadline, and still wants more, was starved,
# not timed out: a trivial call's own process takes 1-4 ms (the hold's starved ones 3.2-3.4 ms); a
# loop among 400 on two cores has 5-10 ms by a 2 s deadline, among 100 ~200 ms by a 10 s one. (At 10 ms,
# most of those 400 loops got overtime and ran to 10 ms: answered 0.5 s later, their slots held from
# the calls queued behind them.) How often G looks again while it waits on one.
STARVED_CPU_NS = 5_000_000
# Those figures are a fast machine's: where the machine is slower (or its load slows every process), a
# trivial call's own process takes longer too (5.4 ms seen with 2.5 ms of set-up), so the bound is
# also this many times the CPU the call's process took to set the call up (the same steps every call
# takes, on the same machine, at that moment), whichever is more. 0.6 ms of set-up (the VMs above)
# leaves it at STARVED_CPU_NS.
STARVED_SETUP_TIMES = 3
STARVED_LOOK_S = 0.1
# A process's CPU time where /proc has no `schedstat` to tell it: past any bound.
UNCOUNTED_CPU_NS = 1 << 62
PF_EXITING = 0x4
# The longest the zygote's loop sleeps when no namespace is due.
LOOK_EVERY_S = 600.0
MAX_MESSAGE, STDIO_FDS, MAX_FDS = protocol.MAX_MESSAGE, protocol.STDIO_FDS, protocol.MAX_FDS
# H's stamp to G: when the program started (time.monotonic), its timeout, the size of /dev/shm, and
# the CPU H had taken by then, in ns.
STARTED = struct.Struct("ddqq")
NOTHING_YET = b"(nothing yet)"
SLOTS = "/slots"
# A slot's scratch directories: tmpfs mounts of its namespace, emptied after each call.
SCRATCH_DIRS = ("/tmp", "/dev/shm")
EMPTY_SCRATCH_MODE = stat.S_IFDIR | 0o1777
MS_RDONLY, MS_REMOUNT, MS_BIND = 1, 0x20, 0x1000

libc = ctypes.CDLL(None, use_errno=True)


def check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def mount(source: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    encoded = [value.encode() if value is not None else None for value in (source, target, fstype, data)]
    check(libc.mount(encoded[0], encoded[1], encoded[2], flags, encoded[3]), f"mount {target}")


class SockFilterProgram(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]


class Setup(NamedTuple):
    """What every call of this zygote is set up with."""

    # The seccomp policy in two filters, each compiled once, as prctl takes them: the slot's init loads
    # the first (its calls' processes inherit it), each call's process the second (`CALL_SETUP`).
    init_policy: SockFilterProgram
    policy: SockFilterProgram
    # mount(2) options of each call's /tmp.
    tmp_options: str
    # Size of each call's /dev/shm, unless its request says otherwise.
    tmp_bytes: int


# What each call's process hands to the kernel is made once, here, as is the lookup of capset (a
# name's first use is a dlsym): the call's process then only makes the syscalls.
CAPSET_HEADER = (ctypes.c_uint32 * 2)(LINUX_CAPABILITY_VERSION_3, 0)
NO_CAPABILITIES = (ctypes.c_uint32 * 6)()
capset = libc.capset


def compiled_filter(policy: object) -> SockFilterProgram:
    """The policy as BPF, compiled once: loading it per call is then one prctl, not a compile."""
    read_end, write_end = os.pipe()
    with os.fdopen(write_end, "wb") as out:
        policy.export_bpf(out)  # type: ignore[attr-defined]
    with os.fdopen(read_end, "rb") as source:
        bpf = source.read()
    # The structure keeps `bpf` alive: c_char_p holds the bytes object it points into.
    return SockFilterProgram(len(bpf) // SOCK_FILTER_SIZE, bpf)


def load_filter(program: SockFilterProgram) -> None:
    check(libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(program), 0, 0), "seccomp")


def drop_capabilities() -> None:
    check(capset(CAPSET_HEADER, NO_CAPABILITIES), "capset")


def apply_limits(request: protocol.CallRequest, in_process: bool) -> None:
    rlimits = request["rlimits"]
    # The warm image is already mapped: an address-space budget (the fallback's) comes on top of it.
    wants_address_space = in_process and any(kind == resource.RLIMIT_AS for kind, _, _ in rlimits)
    in_use = address_space_in_use() if wants_address_space else 0
    for kind, soft, hard in rlimits:
        extra = in_use if kind == resource.RLIMIT_AS else 0
        resource.setrlimit(kind, (soft + extra, hard + extra))
    # Below the zygote and the worker, so a busy call cannot delay its own kill.
    os.nice(request["niceness"])


def join_cgroup(fds: list[int]) -> None:
    """Move this process into the calls' cgroup; the processes it forks are born there."""
    for fd in fds:
        os.write(fd, b"0")
        os.close(fd)


def first_to_go_when_memory_runs_out() -> None:
    """The init shares the call's group, and the OOM killer picks by size, plus this: the call's
    processes (which inherit it) go before the init, whose pages of the warm image look big. (os-level:
    a file object would cost the call more than the write; try/except, not contextlib.suppress: an
    object less, and fewer pages of the image written.)"""
    try:  # noqa: SIM105
        write_file("/proc/self/oom_score_adj", b"1000")
    except OSError:
        pass


def write_file(path: str, data: bytes) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


def address_space_in_use() -> int:
    """VmSize, the first field of statm (in pages)."""
    fd = os.open("/proc/self/statm", os.O_RDONLY | os.O_CLOEXEC)
    try:
        return int(os.read(fd, 256).split()[0]) * resource.getpagesize()
    finally:
        os.close(fd)


def python_file_of(argv: list[str]) -> str | None:
    """The script when argv is `<this python> [-B] script.py`, which can run in the warm image."""
    if not argv or argv[0] != sys.executable or not argv[-1].endswith(".py"):
        return None
    return argv[-1] if all(flag == "-B" for flag in argv[1:-1]) else None


def run_call(requests: socket.socket, started: int, setup: Setup, shm_bytes: int) -> None:
    """H: take the call's request (straight from the zygote server, see `CallNamespace`), then become
    the call. `started` is the write end of G's pipe; `shm_bytes` the size of /dev/shm now."""
    # While it waits: what running the call needs that does not depend on the call.
    prepare()
    # Its own ipc namespace: no SysV object shared with the calls before (an ipc namespace is freed by
    # a kernel worker, so the call's exit does not wait for that).
    check(libc.unshare(CLONE_NEWIPC), "unshare")
    message, fds, _, _ = socket.recv_fds(requests, MAX_MESSAGE, STDIO_FDS)
    request = protocol.unpack_call(message)
    if request["shm_bytes"] != shm_bytes:
        # Still under G's filter, with G's capabilities: the slot's namespace keeps the new size.
        shm_bytes = request["shm_bytes"]
        mount("tmpfs", "/dev/shm", None, MS_REMOUNT | MS_NOSUID | MS_NODEV, shm_options(shm_bytes))
    # Dumpable again, as an exec would make it (the init is not): its /proc/self is its own.
    libc.prctl(PR_SET_DUMPABLE, 1)
    first_to_go_when_memory_runs_out()
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
    # Everything else goes, the request socket with it (no call reads the requests of the next).
    os.closerange(3, started)
    os.closerange(started + 1, 65536)
    os.chdir("/workspace")
    script = python_file_of(request["argv"])
    apply_limits(request, in_process=script is not None)
    drop_capabilities()
    load_filter(setup.policy)
    # Tells G that what follows is the program's doing (an exit before this is a sandbox failure),
    # from when, and for how long; one write of less than PIPE_BUF, so G reads it whole.
    os.write(started, STARTED.pack(time.monotonic(), request["timeout_s"], shm_bytes, time.thread_time_ns()))
    os.close(started)
    if script is not None:
        os._exit(run_python(script))
    os.execv(request["argv"][0], request["argv"])


def empty_scratch(empty_sizes: dict[str, int]) -> None:
    """From G, once the call's processes are all gone: the slot's /tmp and /dev/shm as a new tmpfs
    has them, empty and mode 1777, for the next call. Emptied, not mounted afresh for each call: the
    unmount that ends a call's own mount namespace waits for an expedited RCU grace period, which
    hundreds of preempted processes can stretch to seconds. Everything in them belongs to the
    sandbox's uid, as G does, so G can open and remove all of it; if it cannot, this raises, and G
    ends its namespace rather than pass anything on (the slot's next call gets a new one).
    `empty_sizes`: each directory's size when it was mounted, empty."""
    for root in SCRATCH_DIRS:
        if left_as_mounted(root, empty_sizes[root]):
            continue
        empty_tree(root)
        os.chmod(root, 0o1777)  # noqa: PTH101 (no pathlib in the zygote, see the imports)


def left_as_mounted(root: str, empty_size: int) -> bool:
    """Whether the call left the directory empty and mode 1777, which most calls do: one stat instead
    of a scan and a chmod. A tmpfs directory's size grows by a fixed amount with each entry in it (a
    file, a directory, a link, a node of any kind) and shrinks back when the entry goes, so it is the
    empty size exactly when nothing is in it; a call cannot set it."""
    status = os.lstat(root)
    return status.st_size == empty_size and status.st_mode == EMPTY_SCRATCH_MODE


def empty_tree(root: str) -> None:
    """Remove everything below `root`, never following a symbolic link."""
    pending, directories = [root], []
    while pending:
        directory = pending.pop()
        # A directory the call made unreadable or unwritable: its owner (the sandbox's uid) opens it.
        os.chmod(directory, 0o700)  # noqa: PTH101
        with os.scandir(directory) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    pending.append(entry.path)
                    directories.append(entry.path)
                else:
                    os.unlink(entry.path)  # noqa: PTH108
    for directory in reversed(directories):
        os.rmdir(directory)  # noqa: PTH106


def shm_options(size: int) -> str:
    return f"size={size},mode=1777"


class CallProcess:
    """H, forked by G before its call arrives, waiting for its request on the slot's request socket.

    G never sees the request: H tells G, through a pipe G keeps for all its calls, when the program
    starts and its timeout. So G's part of a call is a fork, two waits and a report, and G, whose every
    page the waiting H shares, writes few of them (each is a copy-on-write fault)."""

    def __init__(self, setup: Setup, requests: socket.socket, pipe: tuple[int, int], shm_bytes: int) -> None:
        started_r, started_w = pipe
        self.pid = os.fork()
        if self.pid == 0:
            try:
                os.close(started_r)
                run_call(requests, started_w, setup, shm_bytes)
            finally:
                os._exit(EXIT_SETUP_FAILED)
        self.pidfd = os.pidfd_open(self.pid)
        self.started = started_r

    def wait(self) -> tuple[protocol.CallReport, int | None]:
        """Until the call has ended or run out of time: its report, and the size of /dev/shm it left
        (None when H ended before it started the program)."""
        # poll(2), not select(2): the zygote holds a few descriptors per slot, past select's 1024.
        poller = select.poll()
        poller.register(self.started, select.POLLIN)
        poller.register(self.pidfd, select.POLLIN)
        poller.poll()
        try:
            stamp = os.read(self.started, STARTED.size)
        except BlockingIOError:
            stamp = b""
        if len(stamp) != STARTED.size:
            # H ended before it started the program: our failure, not the call's.
            report = self._ended(0.0)
            report["setup_failed"] = True
            return report, None
        started, timeout_s, shm_bytes, setup_ns = STARTED.unpack(stamp)
        poller.unregister(self.started)
        finished = bool(poller.poll(max(0.0, started + timeout_s - time.monotonic()) * 1000))
        duration_ms = (time.monotonic() - started) * 1000
        if not finished:
            finished = self._overtime(poller, starved_below_ns(setup_ns))
        if not finished:
            # A plain int: marshal (the report's way to the zygote) refuses an IntEnum.
            return {"timed_out": True, "signal": int(signal.SIGKILL), "duration_ms": duration_ms}, shm_bytes
        return self._ended(duration_ms), shm_bytes

    def _overtime(self, poller: select.poll, starved_below: int) -> bool:
        """Past the deadline: whether the call ends within OVERTIME_S more, waited for only while it is
        exiting or starved. Exiting: the program had ended when its time ran out, and only its process's
        teardown was left (the kernel unmapping its memory, which waits on locks of the shared libraries
        that every process of the host takes). Starved: the machine, busy with hundreds of other calls,
        had not run it (it wants a CPU and has had less than `starved_below` ns). Neither is the
        program's time; a program that ran its time, or sleeps, is stopped at once."""
        give_up = time.monotonic() + OVERTIME_S
        seen = look_at(self.pid)
        starved = seen.wants_cpu and seen.cpu_ns < starved_below
        while (left := give_up - time.monotonic()) > 0:
            if seen.exiting:
                return bool(poller.poll(left * 1000))
            if not starved:
                return False
            if poller.poll(min(left, STARVED_LOOK_S) * 1000):
                return True
            # Starved at its deadline, it keeps its overtime until it has had that much CPU after all,
            # whatever it waits on between its turns (a pipe, its children).
            seen = look_at(self.pid)
            starved = seen.cpu_ns < starved_below
        return False

    def _ended(self, duration_ms: float) -> protocol.CallReport:
        _, status, usage = os.wait4(self.pid, 0)
        self.pid = 0
        report: protocol.CallReport = {
            "timed_out": False,
            "duration_ms": duration_ms,
            "cpu_ms": (usage.ru_utime + usage.ru_stime) * 1000,
            "max_rss_kb": usage.ru_maxrss,
        }
        if os.WIFSIGNALED(status):
            report["signal"] = os.WTERMSIG(status)
        else:
            report["exit_code"] = os.WEXITSTATUS(status)
        return report

    def close(self) -> None:
        os.close(self.pidfd)


class Threads(NamedTuple):
    """What the threads of a process show in /proc, all read in one pass."""

    # Every thread in its exit (the kernel's PF_EXITING in its flags).
    exiting: bool
    # Some thread wants a CPU: runnable, or waiting in the kernel (R or D).
    wants_cpu: bool
    # The CPU time all the threads have had, in ns.
    cpu_ns: int


def look_at(pid: int) -> Threads:
    """The process's threads as /proc shows them; nothing exiting, wanting or spent once it is gone."""
    exiting, wants_cpu, cpu_ns = True, False, 0
    try:
        threads = os.listdir(f"/proc/{pid}/task")  # noqa: PTH208 (no pathlib in the zygote)
        for thread in threads:
            # The fields after the command name (which may hold spaces and parentheses): state, ppid,
            # pgrp, session, tty_nr, tpgid, flags.
            fields = read_proc(f"/proc/{pid}/task/{thread}/stat").rpartition(b")")[2].split()
            exiting = exiting and bool(int(fields[6]) & PF_EXITING)
            wants_cpu = wants_cpu or fields[0] in (b"R", b"D")
            try:
                # The first field: the thread's time on a CPU.
                cpu_ns += int(read_proc(f"/proc/{pid}/task/{thread}/schedstat").split()[0])
            except OSError:
                # A kernel without schedstat: the exit rule still holds, nothing counts as starved.
                cpu_ns = UNCOUNTED_CPU_NS
    except (OSError, IndexError, ValueError):
        return Threads(False, False, 0)
    return Threads(exiting and bool(threads), wants_cpu, cpu_ns)


def starved_below_ns(setup_ns: int) -> int:
    """The CPU under which a call's process that still wants a CPU at its deadline was starved, for a
    call whose process took `setup_ns` to set it up."""
    return max(STARVED_CPU_NS, STARVED_SETUP_TIMES * setup_ns)


def is_exiting(pid: int) -> bool:
    """Whether every thread of the process is in its exit, so none of the program's code runs any more
    and its status is set. Every thread, not only the first: a main thread that called pthread_exit
    leaves the others running."""
    return look_at(pid).exiting


def is_starved(pid: int, cpu_below_ns: int = STARVED_CPU_NS) -> bool:
    """Whether the process wants a CPU yet has had less than `cpu_below_ns` of it: a machine too busy
    to run it. A program asleep, or waiting for its input or its children, is not."""
    seen = look_at(pid)
    return seen.wants_cpu and seen.cpu_ns < cpu_below_ns


def read_proc(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        return os.read(fd, 4096)
    finally:
        os.close(fd)


def kill_everything_else() -> None:
    """From pid 1: SIGKILL every other process of the namespace and reap them all.

    Once H is reaped, whatever of the call still runs is a child of pid 1 or below one (an orphan's
    parent becomes the namespace's init, before its parent's exit is seen): with no child left the
    namespace holds nothing else, and kill(-1), which walks every process of the host, is skipped."""
    try:
        os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(-1, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        while True:
            os.wait()


def be_init(link: socket.socket, requests: socket.socket, setup: Setup, join_fds: list[int]) -> None:
    """G: pid 1 of a slot's call namespace, for as long as it lives. Per call: fork H, which takes
    the request from `requests`, enforce the deadline H reports, then kill and reap whatever the call
    left, and only then report on `link`, so nothing of a call still runs when the worker empties the
    workspace for the next."""
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    # Not dumpable: a call cannot open /proc/1/*. Default SIGINT: as pid 1 it then ignores the
    # signals a call sends it; only the zygote's namespace can kill it.
    libc.prctl(PR_SET_DUMPABLE, 0)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    # Once, so that each call's process is born in the slot's group: moving a process between groups
    # waits for an RCU grace period (~8 ms here), which would otherwise be every call's time.
    join_cgroup(join_fds)
    # Inherited by every call's process, which adds the rest of the policy itself.
    load_filter(setup.init_policy)
    shm_bytes: int | None = setup.tmp_bytes
    empty_sizes = {root: os.lstat(root).st_size for root in SCRATCH_DIRS}
    # H's "started" stamp; G holds the write end for every H to inherit, H closes its copy before
    # the program runs.
    pipe = os.pipe()
    os.set_blocking(pipe[0], False)
    while shm_bytes is not None:
        call = CallProcess(setup, requests, pipe, shm_bytes)
        report, shm_bytes = call.wait()
        kill_everything_else()
        call.close()
        try:
            empty_scratch(empty_sizes)
        except OSError:
            # What is left must not reach the next call: the namespace ends with this answer.
            shm_bytes = None
        link.send(protocol.pack(report))
    # Ended without a fresh namespace: H failed before its program started (whether it took a request
    # or not, none may reach the next), or something of the call could not be removed.
    os._exit(0)


def close_all_but(keep: set[int]) -> None:
    low = 3
    for fd in sorted(keep):
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, 65536)


def enter_slot(slot: int, setup: Setup) -> None:
    """In A's fresh mount namespace: the slot's workspace at /workspace, no other slot in view, and
    the slot's own /tmp and /dev/shm (POSIX semaphores and shared memory, as multiprocessing uses
    them): size-capped tmpfs that G empties after each call. The mounts bubblewrap made are locked in
    this namespace (it sits in a nested user namespace), so /slots cannot be unmounted: an empty
    read-only tmpfs covers it."""
    mount("none", "/", None, MS_REC | MS_PRIVATE)
    mount(f"{SLOTS}/slot-{slot}", "/workspace", None, MS_BIND | MS_REC)
    mount("tmpfs", SLOTS, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,nr_inodes=1,mode=0")
    mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, setup.tmp_options)
    mount("tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, shm_options(setup.tmp_bytes))


class CallNamespace:
    """A and G of one slot: A makes a new pid and mount namespace and forks G into it as pid 1, then
    only waits for G. A tells the zygote G's pid, so that the zygote can wait for G's end. The zygote
    sends each call's request on `requests`, which the slot's waiting H reads (G only forks H and
    watches it); G's pid and reports come back on `link`."""

    def __init__(self, slot: int, setup: Setup, join_fds: list[int]) -> None:
        self.slot = slot
        self.link, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.requests, requests_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.pid = os.fork()
        if self.pid == 0:
            try:
                # Nothing of the zygote's or of the other slots' (their pidfds, links, the worker's socket).
                close_all_but({child_end.fileno(), requests_end.fileno(), *join_fds})
                libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
                check(libc.unshare(CLONE_NEWPID | CLONE_NEWNS), "unshare")
                enter_slot(slot, setup)
                init = os.fork()
                if init == 0:
                    try:
                        be_init(child_end, requests_end, setup, join_fds)
                    finally:
                        os._exit(EXIT_SETUP_FAILED)
                child_end.send(str(init).encode())
                child_end.close()
                requests_end.close()
                os.waitpid(init, 0)
            finally:
                os._exit(EXIT_SETUP_FAILED)
        child_end.close()
        requests_end.close()
        self.pidfd = os.pidfd_open(self.pid)
        # G's pid comes as the link's first message (not waited for here: the zygote serves other slots).
        self.init_pidfd: int | None = None
        # The call in progress: its request id and the time past which its G is taken for dead.
        self.call_id: int | None = None
        self.deadline = 0.0
        self.last_used = time.monotonic()

    def start(self, call_id: int, message: bytes, fds: list[int], timeout_s: float) -> None:
        self.call_id = call_id
        self.deadline = time.monotonic() + timeout_s + INIT_GRACE_S
        try:
            socket.send_fds(self.requests, [message], fds)
        finally:
            for fd in fds:
                os.close(fd)

    def receive(self) -> bytes:
        """The link's next message: G's pid first, then G's reports; b"" once G is gone."""
        try:
            raw = self.link.recv(MAX_MESSAGE)
        except BlockingIOError:
            return NOTHING_YET
        except ConnectionError:
            return b""
        if self.init_pidfd is None and raw.isdigit():
            with contextlib.suppress(OSError):
                self.init_pidfd = os.pidfd_open(int(raw))
            return NOTHING_YET
        return raw

    def report(self, raw: bytes) -> protocol.CallReport:
        self.call_id = None
        self.last_used = time.monotonic()
        return protocol.unpack_report(raw)

    def close(self) -> int | None:
        """Kill A (and with it G and its namespace) and reap A. Returns a pidfd of G, readable once G
        has exited, and so every process of its namespace is gone (the caller closes it); None if
        G's pid never came."""
        with contextlib.suppress(ProcessLookupError):
            signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
        if self.init_pidfd is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self.init_pidfd, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)
        os.close(self.pidfd)
        if self.init_pidfd is None:
            # A sent G's pid before it died, if it got that far.
            self.link.setblocking(False)
            self.receive()
        self.link.close()
        self.requests.close()
        return self.init_pidfd


class Dying(NamedTuple):
    """A killed namespace whose G has not exited yet, and what to tell the worker when it has."""

    init_pidfd: int
    answer: protocol.CallReport


class Server:
    """The zygote's loop: requests from the worker, reports from every slot's G, deadlines."""

    def __init__(self, control: socket.socket, setup: Setup, idle_s: float | None) -> None:
        self.control = control
        self.setup = setup
        self.namespaces: dict[int, CallNamespace] = {}
        # Each slot's cgroup descriptors, as the worker sent them once (an empty list without a cgroup).
        self.groups: dict[int, list[int]] = {}
        self.selector = selectors.DefaultSelector()
        self.selector.register(control, selectors.EVENT_READ)
        # No namespace is due (its call's deadline, or its idle end) before this: the namespaces are
        # looked over only then, not after every event (a worker has hundreds of slots).
        self.next_check = time.monotonic() + LOOK_EVERY_S
        # How long an unused namespace is kept (None: for as long as the zygote lives). Dropped, its
        # slot's next call makes it again: a few ms, but its init joins the slot's cgroups, and on cgroup
        # v1 each join holds up every fork on the host for an RCU grace period.
        self.idle_s = idle_s

    def serve(self) -> None:
        while True:
            for key, _ in self.selector.select(max(0.0, self.next_check - time.monotonic())):
                data: CallNamespace | Dying | None = key.data
                if data is None:
                    if not self._from_worker():
                        return
                elif isinstance(data, Dying):
                    self._gone(data)
                elif self.namespaces.get(data.slot) is data:
                    # (Not a namespace dropped by an earlier event of this same batch.)
                    self._from_init(data)
            if time.monotonic() >= self.next_check:
                self._expire()

    def _from_worker(self) -> bool:
        message, fds, flags, _ = socket.recv_fds(self.control, MAX_MESSAGE, MAX_FDS)
        if not message:
            return False
        request = protocol.decode_request(message)
        if flags & socket.MSG_CTRUNC and "cancel" not in request:
            # Descriptors the kernel could not pass (the open-files limit): without all of its cgroup's,
            # a namespace would escape the slot's limits. Refused: the call runs cold.
            self._refuse(request["id"], fds, "the call's descriptors did not all arrive")
            return True
        namespace = self.namespaces.get(request["slot"])
        if "cancel" in request:
            answer: protocol.CallReport = {"id": request["id"], "cancelled": True}
            if namespace is not None and namespace.call_id == request["id"]:
                self._drop(namespace, answer)
            else:
                self._send(answer)
            return True
        slot = request["slot"]
        stdio = fds[:STDIO_FDS]
        if request["join"]:
            self._keep_group(slot, fds[STDIO_FDS:])
        else:
            for fd in fds[STDIO_FDS:]:
                os.close(fd)
        if namespace is not None and namespace.call_id is not None:
            # The worker gives a slot one call at a time; a second one is a bug: refuse it, keep the first.
            self._refuse(request["id"], stdio, f"slot {slot} is busy")
            return True
        if namespace is None:
            group = self.groups.get(slot)
            if group is None:
                # Never without the slot's cgroup: its calls would escape their limits.
                self._refuse(request["id"], stdio, f"slot {slot}'s cgroup was never sent")
                return True
            namespace = CallNamespace(slot, self.setup, group)
            self.namespaces[slot] = namespace
            self.selector.register(namespace.link, selectors.EVENT_READ, namespace)
        try:
            namespace.start(request["id"], protocol.pack(request), stdio, request["timeout_s"])
            self.next_check = min(self.next_check, namespace.deadline)
        except OSError as exc:
            self._drop(namespace)
            self._send({"id": request["id"], "error": f"the call's init is gone: {exc}"})
        return True

    def _keep_group(self, slot: int, join_fds: list[int]) -> None:
        for fd in self.groups.pop(slot, []):
            os.close(fd)
        self.groups[slot] = join_fds

    def _refuse(self, call_id: int, stdio: list[int], reason: str) -> None:
        for fd in stdio:
            os.close(fd)
        self._send({"id": call_id, "error": reason})

    def _from_init(self, namespace: CallNamespace) -> None:
        call_id = namespace.call_id
        raw = namespace.receive()
        if raw is NOTHING_YET:
            return
        if raw:
            report = namespace.report(raw)
            if self.idle_s is not None:
                self.next_check = min(self.next_check, namespace.last_used + self.idle_s)
        else:
            # G died or its link broke: a fresh namespace for the slot's next call.
            self._drop(namespace)
            report = {"error": "the call's init died"}
        if call_id is not None:
            report["id"] = call_id
            self._send(report)

    def _expire(self) -> None:
        now = time.monotonic()
        self.next_check = now + LOOK_EVERY_S
        for namespace in list(self.namespaces.values()):
            if namespace.call_id is not None:
                due = namespace.deadline
            elif self.idle_s is not None:
                due = namespace.last_used + self.idle_s
            else:
                continue
            if now < due:
                self.next_check = min(self.next_check, due)
            elif namespace.call_id is not None:
                # G has not reported past the call's deadline (a machine this busy starves it): the
                # namespace goes, the call with it, which had outrun its deadline.
                self._drop(namespace, {"id": namespace.call_id, "timed_out": True, "signal": signal.SIGKILL})
            else:
                self._drop(namespace)

    def _drop(self, namespace: CallNamespace, answer: protocol.CallReport | None = None) -> None:
        """Kill the slot's namespace. `answer` goes to the worker once every process of it is gone,
        watched without blocking the other slots (killed processes may wait for a CPU to die on)."""
        self.selector.unregister(namespace.link)
        del self.namespaces[namespace.slot]
        init_pidfd = namespace.close()
        if init_pidfd is None:
            if answer is not None:
                self._send(answer)
        elif answer is None:
            os.close(init_pidfd)
        else:
            self.selector.register(init_pidfd, selectors.EVENT_READ, Dying(init_pidfd, answer))

    def _gone(self, dying: Dying) -> None:
        self.selector.unregister(dying.init_pidfd)
        os.close(dying.init_pidfd)
        self._send(dying.answer)

    def _send(self, report: protocol.CallReport) -> None:
        self.control.send(protocol.encode(report))


def mount_size(options: str) -> int:
    """The `size=` of tmpfs mount options."""
    return int(dict(option.partition("=")[::2] for option in options.split(","))["size"])


def serve(control: socket.socket, tmp_options: str, idle_s: float | None) -> None:
    from seccomp_policy import CALL_SETUP, make_filter, make_setup_filter  # type: ignore[import-not-found]

    setup = Setup(
        compiled_filter(make_filter(leave_out=CALL_SETUP)),
        compiled_filter(make_setup_filter()),
        tmp_options,
        mount_size(tmp_options),
    )
    make_pipe_streams()
    find_recursion_counters()
    # Objects that exist now are never collected in a call; freezing keeps their pages shared.
    gc.collect()
    gc.freeze()
    # Give back the heap pages that start-up freed (~0.8 MB: libseccomp's build of the filter, import
    # garbage): fork copies an entry for each resident page and each call's exit tears it down.
    libc.malloc_trim(0)
    control.send(protocol.encode({"ready": True, "modules": sorted(sys.modules)}))
    Server(control, setup, idle_s).serve()


def main() -> None:
    # The idle time after which a namespace is dropped, in seconds ("keep": never).
    control_fd, tmp_options, idle, *preload = sys.argv[1:]
    for module in preload:
        try:
            __import__(module)
        except ImportError as missing:
            print(f"zygote: cannot preload {module}: {missing}", file=sys.stderr)
    warm_up(preload)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    # The worker going away closes the control socket: so are we.
    with contextlib.suppress(ConnectionResetError, BrokenPipeError):
        serve(socket.socket(fileno=int(control_fd)), tmp_options, None if idle == "keep" else float(idle))


if __name__ == "__main__":
    main()
