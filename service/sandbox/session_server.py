"""The interpreter of one session, running inside its sandbox (passed to `python3 -c`, never imported).

The sandbox's first process is a tiny init for the session and every branch forked from it: it
forks the interpreter, adopts whatever is orphaned (it is a child subreaper), and exits once nothing
of the family is left, which ends the sandbox. The interpreter reads one JSON request per line on its
channel (a Unix socket to the worker, its original stdin and stdout) and answers one JSON line. The
code of each request runs in one namespace that persists between requests, with fds 1 and 2 pointed
at fresh capture files, so prints, C extensions and child processes are all captured. If the last
statement is an expression, its repr is printed, as in a notebook. A per-call timer interrupts code
that runs too long; the worker kills the session if even that does not stop it.

A fork request carries the branch's own channel (SCM_RIGHTS). The interpreter forks; the child enters
new user, mount and pid namespaces and forks twice more: pid 1 of the new namespace, which only reaps
(and keeps the namespace, and the branches forked from this branch, alive), and the branch's
interpreter under it. That says so on the branch's channel and waits while the worker mounts the
branch's copy of the workspace, a fresh /tmp and /dev/shm and its own /proc over its view; then it
moves its cwd and open workspace files onto the copy and serves. A branch so sees neither its parent's
processes nor its siblings'. What this process reports is only as trustworthy as the code it runs.
"""

import array
import ast
import contextlib
import ctypes
import json
import os
import signal
import socket
import sys
import time
import traceback
from pathlib import Path
from typing import Any

CAPTURE_DIR = "/tmp"
WORKSPACE = "/workspace"
CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID = 0x00020000, 0x10000000, 0x20000000
PR_SET_CHILD_SUBREAPER = 36
LINUX_CAPABILITY_VERSION_3 = 0x20080522
RECV_BYTES = 1 << 20
REOPEN_DROPPED = os.O_CREAT | os.O_EXCL | os.O_TRUNC

libc = ctypes.CDLL(None, use_errno=True)


class CallTimeout(BaseException):
    """A BaseException, so that user code's `except Exception` does not swallow it."""


def on_alarm(_signum: int, _frame: Any) -> None:
    raise CallTimeout


class Channel:
    """JSON lines over the worker's Unix socket, with the descriptors sent alongside them."""

    def __init__(self, fd: int) -> None:
        self.sock = socket.socket(fileno=fd)
        self.sock.setblocking(True)
        self.buffer = b""
        self.fds: list[int] = []

    def receive(self) -> dict[str, Any] | None:
        while b"\n" not in self.buffer:
            fds = array.array("i")
            data, ancillary, _, _ = self.sock.recvmsg(RECV_BYTES, socket.CMSG_SPACE(4 * fds.itemsize))
            if not data:
                return None
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
            self.fds.extend(fds)
            self.buffer += data
        line, _, self.buffer = self.buffer.partition(b"\n")
        request: dict[str, Any] = json.loads(line)
        return request

    def send(self, answer: dict[str, Any]) -> None:
        self.sock.sendall(json.dumps(answer).encode() + b"\n")

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.sock.close()


def run(code: str, namespace: dict[str, Any]) -> None:
    tree = ast.parse(code, "<session>", "exec")
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    exec(compile(tree, "<session>", "exec"), namespace)
    if isinstance(last, ast.Expr):
        value = eval(compile(ast.Expression(last.value), "<session>", "eval"), namespace)
        if value is not None:
            print(repr(value))


def user_frames(tb: Any) -> Any:
    """The traceback from the first frame of the session's own code on: ours is noise."""
    while tb is not None and tb.tb_frame.f_code.co_filename != "<session>":
        tb = tb.tb_next
    return tb


def captured(fd: int, cap: int) -> tuple[str, int]:
    total = os.fstat(fd).st_size
    os.lseek(fd, 0, os.SEEK_SET)
    data = os.read(fd, cap) if cap else b""
    return data.decode("utf-8", errors="replace"), total


def status_of(exc: BaseException | None) -> str:
    if exc is None:
        return "ok"
    if isinstance(exc, CallTimeout):
        return "timeout"
    if isinstance(exc, MemoryError):
        return "memory_limit"
    if isinstance(exc, SystemExit) and exc.code in (None, 0):
        return "ok"
    return "error"


def call(request: dict[str, Any], namespace: dict[str, Any], quiet: int) -> dict[str, Any]:
    out = os.open(f"{CAPTURE_DIR}/.session-stdout", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    err = os.open(f"{CAPTURE_DIR}/.session-stderr", os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
    os.dup2(out, 1)
    os.dup2(err, 2)
    started = time.perf_counter()
    failure: BaseException | None = None
    signal.setitimer(signal.ITIMER_REAL, float(request["timeout_s"]))
    try:
        run(request["code"], namespace)
    except BaseException as exc:
        failure = exc
        if not isinstance(exc, CallTimeout | SystemExit):
            traceback.print_exception(type(exc), exc, user_frames(exc.__traceback__))
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    duration_ms = (time.perf_counter() - started) * 1000
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    cap = int(request["output_bytes"])
    stdout, stdout_bytes = captured(out, cap)
    stderr, stderr_bytes = captured(err, cap)
    for fd in (out, err):
        os.close(fd)
    os.dup2(quiet, 1)
    os.dup2(quiet, 2)
    exit_code = failure.code if isinstance(failure, SystemExit) and isinstance(failure.code, int) else None
    return {
        "status": status_of(failure),
        "exit_code": None
        if isinstance(failure, CallTimeout)
        else exit_code
        if exit_code is not None
        else int(failure is not None),
        "stdout": stdout,
        "stderr": stderr,
        "stdout_bytes": stdout_bytes,
        "stderr_bytes": stderr_bytes,
        "truncated": stdout_bytes > cap or stderr_bytes > cap,
        "duration_ms": round(duration_ms, 3),
    }


def check(result: int, what: str) -> None:
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def enter_own_namespaces() -> None:
    """New user, mount and pid namespaces (the last for the children), as the same uid, with every
    capability they gave dropped again: the worker changes the mounts of this view from outside, the
    branch never can."""
    uid, gid = os.getuid(), os.getgid()
    check(libc.unshare(CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID), "unshare")
    with open("/proc/self/setgroups", "w") as setgroups:
        setgroups.write("deny")
    with open("/proc/self/uid_map", "w") as uid_map:
        uid_map.write(f"{uid} {uid} 1")
    with open("/proc/self/gid_map", "w") as gid_map:
        gid_map.write(f"{gid} {gid} 1")
    header = (ctypes.c_uint32 * 2)(LINUX_CAPABILITY_VERSION_3, 0)
    check(libc.capset(header, (ctypes.c_uint32 * 6)()), "capset")


def reopen_workspace_files(keep: set[int]) -> None:
    """Point every open workspace file at the branch's copy, at the same offset and with the same flags:
    after fork parent and branch would share one offset, and the branch would write the parent's file."""
    for entry in Path("/proc/self/fd").iterdir():
        fd = int(entry.name)
        if fd in keep:
            continue
        with contextlib.suppress(OSError):
            path = str(entry.readlink())
            if not path.startswith(f"{WORKSPACE}/") or path.endswith(" (deleted)"):
                continue
            fdinfo = Path(f"/proc/self/fdinfo/{fd}").read_text().splitlines()
            info = dict(line.split(":", 1) for line in fdinfo)
            flags, position = int(info["flags"], 8), int(info["pos"])
            inheritable = os.get_inheritable(fd)
            copy = os.open(path, flags & ~REOPEN_DROPPED)
            os.lseek(copy, position, os.SEEK_SET)
            os.dup2(copy, fd, inheritable=inheritable)
            os.close(copy)


def become_branch(parent: Channel, channel_fd: int, quiet: int) -> Channel:
    """In the fork's child: leave the parent's channel and view, take over the branch's copy."""
    parent.fds.remove(channel_fd)
    parent.close()
    enter_own_namespaces()
    # Out of the way at once: pid 1 of the new namespace is adopted by the family's init.
    if os.fork() != 0:
        os._exit(0)
    if os.fork() != 0:
        os.close(channel_fd)
        reap_until_alone()
    channel = Channel(channel_fd)
    channel.send({"unshared": True})
    if channel.receive() != {"mounted": True}:
        os._exit(1)
    os.chdir(WORKSPACE)
    reopen_workspace_files({channel.sock.fileno(), quiet})
    channel.send({"ready": True, "pid": os.getpid()})
    return channel


def fork(channel: Channel, quiet: int) -> tuple[Channel, dict[str, Any] | None]:
    """The channel to serve next, and the answer to give on it (None: the branch has answered)."""
    if not channel.fds:
        return channel, {"error": "a fork request carries the branch's channel"}
    branch_fd = channel.fds[0]
    try:
        pid = os.fork()
    except OSError as exc:
        return channel, {"error": f"fork: {exc}"}
    if pid == 0:
        try:
            return become_branch(channel, branch_fd, quiet), None
        except BaseException:
            os._exit(1)
    channel.fds.remove(branch_fd)
    os.close(branch_fd)
    # The child leaves as soon as it has made the branch's init: reaped here, no zombie is left.
    os.waitpid(pid, 0)
    return channel, {"forked": True}


def serve() -> None:
    channel = Channel(os.dup(0))
    quiet = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(quiet, fd)
    signal.signal(signal.SIGALRM, on_alarm)
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": __builtins__}
    channel.send({"ready": True})
    while (request := channel.receive()) is not None:
        if request.get("fork"):
            channel, answer = fork(channel, quiet)
        else:
            answer = call(request, namespace, quiet)
        if answer is not None:
            channel.send(answer)


def reap_until_alone() -> None:
    """An init's life: reap whatever ends, exit once nothing is left (signals from inside its namespace
    do not reach it: pid 1 ignores those it has no handler for)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    quiet = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(quiet, fd)
    with contextlib.suppress(ChildProcessError):
        while True:
            os.wait()
    os._exit(0)


def be_family_init() -> None:
    """Pid 2 of the sandbox, under bubblewrap's own init: while any session of the family lives, so does
    the sandbox; it adopts their orphans (and the inits of branches) and reaps them."""
    check(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "prctl")
    if os.fork() == 0:
        serve()
        os._exit(0)
    reap_until_alone()


be_family_init()
