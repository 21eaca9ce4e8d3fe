"""The warm zygote: a pre-started interpreter that forks each call into its own namespaces.

Runs inside a long-lived bubblewrap sandbox of one worker slot (own user and net namespace, read-only
root, the slot's workspace at /workspace), in the sandbox's interpreter, with the heavy modules
already imported. Standard library and `seccomp` only: it never imports the service.

For every call a chain of processes is forked *before* the call arrives, so no fork is on the
critical path:

    zygote ── A: new pid, mount and ipc namespaces; waits for G, dies with the zygote
              └─ G: pid 1 of the call; fresh /proc and /tmp; reaps, reports H's exit status
                 └─ H: waits for the request, then takes the call's stdin/stdout/stderr, limits,
                       drops every capability, loads the seccomp filter and runs the program
                       (Python in-process from the warm image, anything else by exec)

The worker sends one request per call on the control socket (a small JSON message plus the three
pipe ends); the zygote hands it to the waiting H, enforces the wall clock by killing A (G and with it
the whole pid namespace die with A), and answers with the exit status G reported. The status comes
from G, which is pid 1 of the call and out of the call's reach, never from the call itself.
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import json
import os
import resource
import select
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

CLONE_NEWNS = 0x00020000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REC, MS_PRIVATE = 2, 4, 8, 0x4000, 0x40000
PR_SET_PDEATHSIG, PR_SET_DUMPABLE = 1, 4
LINUX_CAPABILITY_VERSION_3 = 0x20080522
EXIT_SETUP_FAILED = 125
MAX_MESSAGE = 65536

libc = ctypes.CDLL(None, use_errno=True)


def check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def mount(source: str, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    encoded = [value.encode() if value is not None else None for value in (source, target, fstype, data)]
    check(libc.mount(encoded[0], encoded[1], encoded[2], flags, encoded[3]), f"mount {target}")


def drop_capabilities() -> None:
    header = (ctypes.c_uint32 * 2)(LINUX_CAPABILITY_VERSION_3, 0)
    data = (ctypes.c_uint32 * 6)()
    check(libc.capset(header, data), "capset")


def apply_limits(request: dict[str, Any], in_process: bool) -> None:
    memory = request["memory_bytes"]
    if in_process:
        # The warm image is already mapped; the call's budget comes on top of it.
        memory += address_space_in_use()
    limits = {
        resource.RLIMIT_AS: memory,
        resource.RLIMIT_CPU: request["cpu_seconds"],
        resource.RLIMIT_NPROC: request["max_processes"],
        resource.RLIMIT_NOFILE: request["max_open_files"],
        resource.RLIMIT_FSIZE: request["max_file_bytes"],
        resource.RLIMIT_CORE: 0,
    }
    for kind, value in limits.items():
        hard = value + 1 if kind == resource.RLIMIT_CPU else value
        resource.setrlimit(kind, (value, hard))
    # Below the zygote and the worker, so a busy call cannot delay its own kill.
    os.nice(request["niceness"])


def address_space_in_use() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    return 0


def python_file_of(argv: list[str]) -> str | None:
    """The script when argv is `<this python> [-I] [-B] script.py`, which can run in the warm image."""
    if not argv or argv[0] != sys.executable or not argv[-1].endswith(".py"):
        return None
    return argv[-1] if all(flag in ("-I", "-B") for flag in argv[1:-1]) else None


def run_python(path: str) -> int:
    import atexit
    import threading
    import types

    sys.argv = [path]
    # As `python3 path` would have it: the script's directory first (the zygote's own is dropped),
    # and a fresh __main__ module, so pickling user-defined objects finds them there.
    sys.path[0] = str(Path(path).resolve().parent)
    main = types.ModuleType("__main__")
    main.__file__ = path
    sys.modules["__main__"] = main
    code = 0
    try:
        with open(path, "rb") as source:
            exec(compile(source.read(), path, "exec"), main.__dict__)
    except SystemExit as exit_request:
        code = exit_code_of(exit_request)
    except BaseException as failure:
        # As the interpreter would print it (C code, fast even for deep recursion), minus our frame.
        sys.excepthook(type(failure), failure, failure.__traceback__.tb_next if failure.__traceback__ else None)
        code = 1
    threading._shutdown()  # type: ignore[attr-defined]
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            code = code or 120
    return code


def exit_code_of(exit_request: SystemExit) -> int:
    if exit_request.code is None:
        return 0
    if isinstance(exit_request.code, int):
        return exit_request.code & 0xFF
    print(exit_request.code, file=sys.stderr)
    return 1


def run_call(handoff: socket.socket, policy: object) -> None:
    """H: wait for the request, then become the call."""
    message, fds, _, _ = socket.recv_fds(handoff, MAX_MESSAGE, 3)
    handoff.close()
    request = json.loads(message)
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
    os.closerange(3, 65536)
    os.chdir("/workspace")
    script = python_file_of(request["argv"])
    apply_limits(request, in_process=script is not None)
    drop_capabilities()
    policy.load()  # type: ignore[attr-defined]
    if script is not None:
        os._exit(run_python(script))
    os.execv(request["argv"][0], request["argv"])


def be_init(handoff: socket.socket, policy: object, tmp_options: str) -> None:
    """G: pid 1 of the call. Mount its own /proc and /tmp, start H, reap, report H's status."""
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    # Not dumpable: the call cannot open /proc/1/* of its init.
    libc.prctl(PR_SET_DUMPABLE, 0)
    mount("none", "/", None, MS_REC | MS_PRIVATE)
    mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, tmp_options)
    call = os.fork()
    if call == 0:
        try:
            run_call(handoff, policy)
        finally:
            os._exit(EXIT_SETUP_FAILED)
    while True:
        pid, status = os.wait()
        if pid == call:
            break
    signalled = os.WIFSIGNALED(status)
    report = {"signal": os.WTERMSIG(status)} if signalled else {"exit_code": os.WEXITSTATUS(status)}
    handoff.send(json.dumps(report).encode())
    os._exit(0)


def enter_call_namespaces(handoff: socket.socket, policy: object, tmp_options: str) -> None:
    """A: new namespaces for the call, then G as their pid 1; lives exactly as long as G."""
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    check(libc.unshare(CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC), "unshare")
    init = os.fork()
    if init == 0:
        try:
            be_init(handoff, policy, tmp_options)
        finally:
            os._exit(EXIT_SETUP_FAILED)
    handoff.close()
    os.waitpid(init, 0)
    os._exit(0)


class Chain:
    """One pre-forked A-G-H chain waiting for its call."""

    def __init__(self, control: socket.socket, policy: object, tmp_options: str) -> None:
        self.handoff, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self.pid = os.fork()
        if self.pid == 0:
            try:
                control.close()
                self.handoff.close()
                enter_call_namespaces(child_end, policy, tmp_options)
            finally:
                os._exit(EXIT_SETUP_FAILED)
        child_end.close()
        self.pidfd = os.pidfd_open(self.pid)

    def run(self, message: bytes, fds: list[int], timeout_s: float) -> dict[str, Any]:
        started = time.monotonic()
        try:
            socket.send_fds(self.handoff, [message], fds)
        finally:
            for fd in fds:
                os.close(fd)
        finished, _, _ = select.select([self.pidfd], [], [], timeout_s)
        timed_out = not finished
        if timed_out:
            os.kill(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        duration_ms = (time.monotonic() - started) * 1000
        os.close(self.pidfd)
        report = self._report()
        self.handoff.close()
        if timed_out:
            return {"timed_out": True, "signal": signal.SIGKILL, "duration_ms": duration_ms}
        if report is None:
            return {"error": "the call's init ended without a status", "duration_ms": duration_ms}
        return {**report, "timed_out": False, "duration_ms": duration_ms}

    def abandon(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.pidfd)
        with contextlib.suppress(ProcessLookupError, ChildProcessError):
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        self.handoff.close()

    def _report(self) -> dict[str, Any] | None:
        self.handoff.setblocking(False)
        try:
            report: dict[str, Any] = json.loads(self.handoff.recv(MAX_MESSAGE))
            return report
        except (BlockingIOError, ValueError):
            return None


def serve(control: socket.socket, tmp_options: str) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from seccomp_policy import make_filter  # type: ignore[import-not-found]

    policy = make_filter()
    # Objects that exist now are never collected in a call; freezing keeps their pages shared.
    gc.collect()
    gc.freeze()
    control.send(json.dumps({"ready": True, "modules": sorted(sys.modules)}).encode())
    while True:
        chain = Chain(control, policy, tmp_options)
        message, fds, _, _ = socket.recv_fds(control, MAX_MESSAGE, 3)
        if not message:
            return
        request = json.loads(message)
        try:
            answer = chain.run(message, fds, request["timeout_s"])
        except OSError as exc:
            chain.abandon()
            answer = {"error": f"the call could not start: {exc}"}
        control.send(json.dumps({**answer, "id": request["id"]}).encode())


def main() -> None:
    control_fd, tmp_options, *preload = sys.argv[1:]
    for module in preload:
        try:
            __import__(module)
        except ImportError as missing:
            print(f"zygote: cannot preload {module}: {missing}", file=sys.stderr)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    # The worker going away closes the control socket: so are we.
    with contextlib.suppress(ConnectionResetError, BrokenPipeError):
        serve(socket.socket(fileno=int(control_fd)), tmp_options)


if __name__ == "__main__":
    main()
