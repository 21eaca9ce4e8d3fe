"""Session interpreters: a family of Python processes in one bubblewrap sandbox, forkable.

A session opened from scratch starts a sandbox built like every call's (`BwrapProfile.command`, a
seccomp filter, rlimits, its own uid) around a workspace that lives as long as the session (given by
the caller, emptied by it). Its interpreter runs `session_server.py` and answers one JSON line per
call on a Unix socket. If it does not answer within the call's timeout plus a grace period, answers
nonsense, or exits, the session is killed and lost: `run` returns None and the caller reports
`session_lost`.

A fork (`SessionProcess.fork`) makes a branch: the interpreter forks itself (the kernel copies its
memory on write), the child enters new user, mount and pid namespaces, and the worker, from outside,
mounts the branch's own copy of the workspace, a fresh /tmp and /dev/shm and its own /proc over the
child's view. Branches live in their parent's sandbox (its uid; their pid namespaces nest in their
parent's, so a branch sees and signals only its own processes), outlive their parent, and the sandbox
ends with the last of its family (`Family`). Ending one session kills its processes, found by its
mount namespace, not its family's. Where the worker has cgroups, each session's interpreter joins a
group of its own, so each branch's memory is counted apart.
"""

from __future__ import annotations

import array
import asyncio
import contextlib
import dataclasses
import json
import logging
import os
import signal
import socket
import struct
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from service.models import StageResult
from service.sandbox.executor import MB, Sandbox, SeccompFd
from service.sandbox.limits import Budget, LimitMode, RlimitLimiter
from service.sandbox.process import Child, Confinement, spawn

log = logging.getLogger(__name__)

SERVER_SOURCE = Path(__file__).with_name("session_server.py").read_text()
# Beyond a call's own timeout: the server's own timer fires first; this is for code that ignores it.
ANSWER_GRACE_S = 2.0
START_TIMEOUT_S = 30.0
FORK_TIMEOUT_S = 30.0
# One answer line carries stdout and stderr, each up to the output cap, JSON-escaped.
LINE_LIMIT = 32 * MB
# CPU seconds over the interpreter's whole life; each call's wall-clock timer does the real limiting.
SESSION_CPU_S = 3600
# Killing a session's processes one by one races with the ones they fork: passes before giving up.
KILL_PASSES = 200
FORK_REQUEST = b'{"fork": true}\n'
# struct ucred (pid, uid, gid) and the socket options for it (Linux values; Python names only some).
UCRED = struct.Struct("3i")
SO_PASSCRED, SCM_CREDENTIALS = 16, 2

# The session filter: the calls' filter, except that `unshare` may make user, mount and pid namespaces
# (how a branch gets a view of its own). Every other namespace stays refused, and so do mount(2) and
# its kin: a session that makes such namespaces itself holds capabilities over nothing it can change.
SECCOMP_SCRIPT = """
import errno, sys
sys.path.insert(0, sys.argv[1])
import seccomp, seccomp_policy as policy
del policy.REFUSED["unshare"]
rules = policy.make_filter()
allowed = sum(policy.CLONE_NAMESPACE_FLAGS[name] for name in ("CLONE_NEWUSER", "CLONE_NEWNS", "CLONE_NEWPID"))
CLONE_NEWTIME = 0x80
for flag in [*policy.CLONE_NAMESPACE_FLAGS.values(), CLONE_NEWTIME]:
    if not flag & allowed:
        rules.add_rule(seccomp.ERRNO(errno.EPERM), "unshare", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
with open(sys.argv[2], "wb") as out:
    rules.export_bpf(out)
"""

# Run by the worker (root) as a child process: setns(2) needs a single-threaded caller. It clones the
# branch's workspace as a detached mount, enters the branch's mount namespace and attaches it at
# /workspace; a fresh /tmp and /dev/shm cover the ones the branch would otherwise share, and a /proc
# mounted from inside the branch's pid namespace shows the branch's processes only.
MOUNT_SCRIPT = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
def check(result, what):
    if result < 0:
        sys.exit(f"{what}: {os.strerror(ctypes.get_errno())}")
pid, workspace, tmp_bytes = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
SYS_OPEN_TREE, SYS_MOVE_MOUNT, AT_FDCWD = 428, 429, -100
OPEN_TREE_CLONE, AT_RECURSIVE, MOVE_MOUNT_F_EMPTY_PATH = 1, 0x8000, 4
CLONE_NEWNS, CLONE_NEWPID, MS_NOSUID, MS_NODEV, MS_NOEXEC = 0x20000, 0x20000000, 2, 4, 8
tree = libc.syscall(SYS_OPEN_TREE, AT_FDCWD, workspace.encode(), OPEN_TREE_CLONE | AT_RECURSIVE)
check(tree, "open_tree")
mounts, pids = os.open(f"/proc/{pid}/ns/mnt", os.O_RDONLY), os.open(f"/proc/{pid}/ns/pid", os.O_RDONLY)
check(libc.setns(mounts, CLONE_NEWNS), "setns mnt")
check(libc.setns(pids, CLONE_NEWPID), "setns pid")
check(libc.syscall(SYS_MOVE_MOUNT, tree, b"", AT_FDCWD, b"/workspace", MOVE_MOUNT_F_EMPTY_PATH), "move_mount")
for target in ("/tmp", "/dev/shm"):
    if os.path.isdir(target):
        options = f"size={tmp_bytes},mode=1777".encode()
        check(libc.mount(b"tmpfs", target.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, options), target)
child = os.fork()
if child == 0:
    check(libc.mount(b"proc", b"/proc", b"proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, None), "/proc")
    os._exit(0)
_, status = os.waitpid(child, 0)
sys.exit(0 if status == 0 else "cannot mount /proc")
"""


def channel_pair() -> tuple[socket.socket, socket.socket]:
    """The worker's end and the interpreter's; the worker's learns its peer's pid from its first line."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    ours.setsockopt(socket.SOL_SOCKET, SO_PASSCRED, 1)
    return ours, theirs


def session_seccomp(sandbox: Sandbox) -> Path:
    """The session filter as BPF, compiled once per worker by the sandbox's interpreter."""
    path = sandbox.root / "session-seccomp.bpf"
    if not path.exists():
        source_dir = str(Path(__file__).parent)
        subprocess.run(
            [sandbox.settings.python_path, "-c", SECCOMP_SCRIPT, source_dir, str(path)],
            check=True,
            capture_output=True,
            timeout=60,
        )
    return path


def parent_of(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("PPid:"):
                return int(line.split()[1])
    raise ProcessLookupError(pid)


def mount_namespace_of(pid: int) -> str:
    return str(Path(f"/proc/{pid}/ns/mnt").readlink())


def processes_in(mount_namespace: str, spared: set[int]) -> list[int]:
    """Host pids of the processes whose view is `mount_namespace`: one session's, as each has its own."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) not in spared:
            with contextlib.suppress(OSError):
                if mount_namespace_of(int(entry.name)) == mount_namespace:
                    found.append(int(entry.name))
    return found


async def first_line(sock: socket.socket, wait_s: float) -> tuple[dict[str, object], int] | None:
    """The first JSON line on a fresh channel and the host pid of its sender, which the kernel writes
    into the message's credentials (SO_PASSCRED): whatever pid namespace the sender is in."""
    loop = asyncio.get_running_loop()
    arrived: asyncio.Future[None] = loop.create_future()

    def readable() -> None:
        if not arrived.done():
            arrived.set_result(None)

    loop.add_reader(sock.fileno(), readable)
    try:
        await asyncio.wait_for(arrived, wait_s)
        data, ancillary, _, _ = sock.recvmsg(4096, socket.CMSG_SPACE(UCRED.size))
    except (TimeoutError, OSError):
        return None
    finally:
        loop.remove_reader(sock.fileno())
    senders = [UCRED.unpack(payload[: UCRED.size])[0] for level, kind, payload in ancillary if kind == SCM_CREDENTIALS]
    with contextlib.suppress(ValueError):
        answer = json.loads(data)
        if isinstance(answer, dict) and data.endswith(b"\n") and senders:
            return answer, senders[0]
    return None


@dataclass
class Family:
    """One sandbox and the sessions living in it: the one opened there and the branches forked from it."""

    sandbox: Child
    members: int = 0

    async def end_member(self, interpreter: int, mount_namespace: str, spared: set[int]) -> None:
        """Kill one session's processes (but the inits in `spared`); the last member takes the sandbox."""
        self.members -= 1
        if self.members <= 0:
            await self.sandbox.stop()
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(interpreter, signal.SIGKILL)
        for _ in range(KILL_PASSES):
            left = processes_in(mount_namespace, spared)
            if not left:
                return
            for pid in left:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            await asyncio.sleep(0.01)


@dataclass
class SessionProcess:
    sandbox: Sandbox
    workspace: Path
    uid: int | None
    memory_mb: int
    # The session's own cgroup under the worker's limiter (where it has one): its memory and processes.
    group: str
    family: Family | None = None
    # Host pid of the interpreter, its mount namespace and the inits it must not kill, once started.
    pid: int = 0
    mount_namespace: str = ""
    inits: set[int] = field(default_factory=set)
    channel: socket.socket | None = None
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None
    died: asyncio.Future[None] | None = None
    pidfd: int | None = None
    ended: bool = field(default=False)

    async def start(self) -> bool:
        """Open the session in a sandbox of its own."""
        settings = self.sandbox.settings
        # Rlimits as the fallback's (one interpreter for many calls), with its environment so that
        # threads work too, whatever the calls use; a branch inherits them. Where the worker has
        # cgroups, each session's interpreter also joins a group of its own (`_join_group`).
        limiter = RlimitLimiter("sessions")
        profile = dataclasses.replace(self.sandbox.profile, extra_env=limiter.env())
        confinement = Confinement(limiter.rlimits(self._budget(self.memory_mb * MB)))
        program = [settings.python_path, "-I", "-B", "-c", SERVER_SOURCE]
        ours, theirs = channel_pair()
        with SeccompFd(session_seccomp(self.sandbox)) as fd, theirs:
            argv = profile.command(self.workspace, program, fd)
            # Branches make their own user namespace: the one bubblewrap would forbid.
            argv.remove("--disable-userns")
            process = spawn(
                argv,
                (theirs.fileno(), theirs.fileno(), subprocess.DEVNULL),
                user=self.uid,
                pass_fds=(fd,),
                preexec_fn=confinement.apply,
            )
        self.family = Family(process)
        ready = await first_line(ours, START_TIMEOUT_S)
        # bubblewrap's init, and the family's own under it, live as long as the family.
        if ready is None or not self._adopt(ready[1], spare_ancestors=2):
            await self.stop()
            return False
        self._join_group()
        await self._connect(ours)
        return True

    def _budget(self, memory_bytes: int) -> Budget:
        settings = self.sandbox.settings
        return Budget(
            memory_bytes=memory_bytes,
            cpu_seconds=SESSION_CPU_S,
            max_processes=settings.max_processes,
            max_open_files=settings.max_open_files,
            max_file_bytes=settings.workspace_max_bytes,
        )

    def _join_group(self) -> None:
        """Move the interpreter into the session's cgroup, so that what it and its children allocate
        from now on (a branch's own pages, not those it still shares with its parent) is counted
        there. Its limit leaves room for the workspace and /tmp (tmpfs pages are charged to their
        writer): the address-space rlimit stays what tells `memory_limit`."""
        limiter = self.sandbox.limiter
        if limiter.mode == LimitMode.rlimit:
            return
        tmpfs_bytes = 2 * self.sandbox.settings.workspace_max_bytes
        try:
            group = limiter.group(self.group)
            group.prepare(self._budget(self.memory_mb * MB + tmpfs_bytes))
            for fd in group.join_fds():
                try:
                    os.write(fd, str(self.pid).encode())
                finally:
                    os.close(fd)
        except OSError as exc:
            log.warning("session left out of its cgroup %s (%s); rlimits only", self.group, exc)

    def _adopt(self, pid: int, spare_ancestors: int) -> bool:
        """Become the session whose interpreter is host `pid`, sparing its nearest inits when it ends."""
        assert self.family is not None
        try:
            self.mount_namespace = mount_namespace_of(pid)
            ancestor = pid
            for _ in range(spare_ancestors):
                ancestor = parent_of(ancestor)
                self.inits.add(ancestor)
            self.pidfd = os.pidfd_open(pid)
        except OSError:
            return False
        self.pid = pid
        loop = asyncio.get_running_loop()
        self.died = loop.create_future()
        loop.add_reader(self.pidfd, self._on_death)
        self.family.members += 1
        return True

    def _on_death(self) -> None:
        if self.died is not None and not self.died.done():
            self.died.set_result(None)

    async def _connect(self, ours: socket.socket) -> None:
        self.channel = ours
        self.reader, self.writer = await asyncio.open_unix_connection(sock=ours, limit=LINE_LIMIT)

    async def run(self, code: str, timeout_s: float, output_bytes: int) -> StageResult | None:
        """Run `code` in the session; None when the interpreter is gone (killed here if need be)."""
        if self.ended or self.writer is None:
            return None
        request = {"code": code, "timeout_s": timeout_s, "output_bytes": output_bytes}
        try:
            self.writer.write(json.dumps(request).encode() + b"\n")
            await self.writer.drain()
        except (BrokenPipeError, ConnectionResetError):
            await self.stop()
            return None
        answer = await self._answer(timeout_s + ANSWER_GRACE_S)
        try:
            return StageResult.model_validate(answer) if answer is not None else None
        except ValidationError:
            await self.stop()
            return None

    async def fork(self, workspace: Path, group: str) -> SessionProcess | None:
        """A branch of this session with `workspace` (already a copy of this one's) as its own; None
        if it could not be made (this session lives on unless it stopped answering)."""
        if self.ended or self.channel is None or self.writer is None or self.family is None:
            return None
        branch = SessionProcess(self.sandbox, workspace, self.uid, self.memory_mb, group, self.family)
        ours, theirs = channel_pair()
        with theirs:
            # Its own small write (the descriptor rides on its first byte); nothing else is buffered,
            # since the interpreter has answered every request sent before.
            descriptor = array.array("i", [theirs.fileno()])
            try:
                self.channel.sendmsg([FORK_REQUEST], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, descriptor)])
            except OSError:
                ours.close()
                await self.stop()
                return None
        forked = await self._answer(FORK_TIMEOUT_S)
        if forked is None or forked.get("forked") is not True:
            ours.close()
            return None
        unshared = await first_line(ours, FORK_TIMEOUT_S)
        # The branch's own init (pid 1 of its namespace) outlives it while branches of it live.
        if unshared is None or not branch._adopt(unshared[1], spare_ancestors=1):
            ours.close()
            return None
        branch._join_group()
        await branch._connect(ours)
        if not await branch._mount_own_view():
            await branch.stop()
            return None
        assert branch.writer is not None
        branch.writer.write(b'{"mounted": true}\n')
        if await branch._answer(FORK_TIMEOUT_S) is None:
            return None
        return branch

    async def _mount_own_view(self) -> bool:
        helper = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",
            "-c",
            MOUNT_SCRIPT,
            str(self.pid),
            str(self.workspace),
            str(self.sandbox.profile.tmp_bytes),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        _, error = await helper.communicate()
        if helper.returncode != 0:
            log.warning("cannot mount a branch's workspace: %s", error.decode(errors="replace").strip())
        return helper.returncode == 0

    async def close_channel(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()
            self.writer = None

    async def _answer(self, wait_s: float) -> dict[str, object] | None:
        """The interpreter's next line; None (and the session stopped) if it dies, stalls or babbles."""
        assert self.reader is not None
        reading = asyncio.ensure_future(self.reader.readline())
        waits: set[asyncio.Future[object]] = {reading}  # type: ignore[arg-type]
        if self.died is not None:
            waits.add(self.died)  # type: ignore[arg-type]
        done, _ = await asyncio.wait(waits, timeout=wait_s, return_when=asyncio.FIRST_COMPLETED)
        answer: object = None
        if reading in done:
            with contextlib.suppress(ValueError, ConnectionError):
                line = reading.result()
                answer = json.loads(line) if line else None
        else:
            reading.cancel()
        if not isinstance(answer, dict):
            await self.stop()
            return None
        return answer

    async def stop(self) -> None:
        """Kill this session's processes (the whole sandbox if it was the family's last)."""
        if self.ended:
            return
        self.ended = True
        await self.close_channel()
        if self.pidfd is not None:
            asyncio.get_running_loop().remove_reader(self.pidfd)
            os.close(self.pidfd)
            self.pidfd = None
        if self.family is None:
            return
        if not self.pid:
            # Never became a member (it did not start): the sandbox is this session's alone.
            if self.family.members <= 0:
                await self.family.sandbox.stop()
            return
        await self.family.end_member(self.pid, self.mount_namespace, self.inits)
