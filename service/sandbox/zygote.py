"""Worker side of the warm zygotes: start them, send them calls, restart them when they fail.

A worker has two kinds of zygote (`zygote_server.py`, each in a long-lived bubblewrap sandbox that sees
every slot's workspace): lean ones with only the standard library loaded (one per `lean_zygote_slots`
slots, see `ZygotePool`), and a heavy one with numpy and sympy imported. Python code that names a heavy
module goes to the heavy one, everything else (the rest of Python, bash, compilers and compiled programs)
to the slot's lean one, whose forks are cheaper. Each zygote runs the calls of its slots at once, each
slot in its own pid namespace (made at start for the lean ones, on the slot's first heavy call for the
heavy one). A call talks to its zygote over one SOCK_SEQPACKET socket shared by all calls: one JSON
request carrying the three pipe ends (and, the first time the zygote serves the slot, the slot's cgroup
descriptors, which the zygote keeps), one JSON reply with the exit status and the request's id, which one
reader task hands to the waiting call. A cancelled call, or one whose answer is late, is killed alone; a
zygote that dies is started again on the next call and the calls it was running fail over to a cold
sandbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from service.sandbox import zygote_protocol as protocol
from service.sandbox.bwrap import BwrapProfile
from service.sandbox.images import Image, make_images
from service.sandbox.limits import Rlimit
from service.sandbox.process import CALL_NICENESS, CallPipes, CapturedStream, Child, ProcessOutcome, spawn
from service.sandbox.python_main import read_source

log = logging.getLogger(__name__)

SERVER_DIR = "/opt/sandpit"
START_TIMEOUT_S = 120.0
# How long past a call's own timeout the worker waits for the zygote's answer before giving up on it.
ANSWER_GRACE_S = 15.0
# How long the call's output may still be draining once its answer is in (its writers are all dead).
IO_GRACE_S = 5.0
MAX_REPORT = 65536
SO_SNDBUFFORCE = 32
# How long a cancelled call's zygote may take to confirm it is gone before it is taken for stuck and
# restarted (which fails over every call it runs): long, since a busy machine makes it slow, not stuck.
CANCEL_WAIT_S = 30.0
# What the heavy zygote has loaded, and the libraries built on it (they import numpy first thing).
HEAVY_IMPORT = re.compile(r"\b(numpy|sympy|scipy|mpmath|pandas|networkx|sklearn|matplotlib)\b")


class ZygoteFailed(RuntimeError):
    pass


@dataclass(frozen=True)
class ZygoteSpec:
    name: str
    preload: tuple[str, ...]
    # How long its slots' namespaces are kept unused (None: always). The lean ones' are kept: the worker
    # makes them for every slot at start (`ZygotePool`), and a burst after a quiet spell (an RL run's
    # training step between two rollout phases) finds them made too. The heavy one's go after ten
    # minutes (a slot's heavy namespace holds ~5 MB more).
    idle_s: float | None


LEAN = ZygoteSpec("lean", (), idle_s=None)
HEAVY = ZygoteSpec("heavy", ("numpy", "sympy"), idle_s=600.0)


def wants_heavy(program: list[str], workspace: Path, python_path: str) -> bool:
    if program[0] != python_path:
        return False
    try:
        source = read_source(str(workspace / program[-1]))
    except OSError:
        return False
    return HEAVY_IMPORT.search(source.decode(errors="replace")) is not None


class Zygote:
    def __init__(
        self,
        spec: ZygoteSpec,
        profile: BwrapProfile,
        slots_dir: Path,
        python_path: str,
        uid: int | None,
        tmp_bytes: int,
    ) -> None:
        self.spec = spec
        self.profile = profile
        self.slots_dir = slots_dir
        self.python_path = python_path
        self.uid = uid
        self.tmp_bytes = tmp_bytes
        # Its own copies of the files it maps, bound over the host's (none: it maps the host's).
        self.image: Image = ()
        self.process: Child | None = None
        self.control: socket.socket | None = None
        self.reader: asyncio.Task[None] | None = None
        self.starting = asyncio.Lock()
        self.pending: dict[int, asyncio.Future[protocol.CallReport]] = {}
        # Resolved when the control socket has room again, while senders wait for it.
        self.room: asyncio.Future[None] | None = None
        self.calls = 0
        # Slots whose cgroup descriptors the running zygote holds: their calls carry none.
        self.joined: set[int] = set()

    async def start(self) -> None:
        control, server_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        # Not -I: calls inherit the interpreter's flags, which must be those of `python3 main.py`.
        program = [
            self.python_path,
            "-B",
            f"{SERVER_DIR}/zygote_server.py",
            str(server_end.fileno()),
            f"size={self.tmp_bytes},mode=1777",
            "keep" if self.spec.idle_s is None else str(self.spec.idle_s),
            *self.spec.preload,
        ]
        argv = self.profile.zygote_command(self.slots_dir, Path(__file__).parent, SERVER_DIR, program, self.image)
        try:
            self.process = spawn(argv, (subprocess.DEVNULL, None, None), user=self.uid, pass_fds=(server_end.fileno(),))
        finally:
            server_end.close()
        control.setblocking(False)
        with contextlib.suppress(OSError):
            # Room for hundreds of requests in flight (capped by net.core.wmem_max unless root).
            control.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE if os.geteuid() == 0 else socket.SO_SNDBUF, 4 << 20)
        self.control = control
        try:
            hello = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(control, 1 << 20), START_TIMEOUT_S)
        except TimeoutError:
            hello = b""
        if not hello:
            await self.stop()
            raise ZygoteFailed(f"{self.spec.name} zygote did not start")
        self.reader = asyncio.create_task(self._read(control), name=f"zygote-{self.spec.name}")

    async def probe(self, slot: int, join_fds_of: Callable[[], list[int]], rlimits: list[Rlimit]) -> None:
        """One real call at start: a host that lets the zygote start but not make a call's
        namespaces (no /proc mount allowed, say) is found now, not on every user call."""
        outcome = await self.run(slot, join_fds_of, ["/bin/true"], b"", 10.0, 1024, rlimits)
        if outcome.exit_code != 0:
            await self.stop()
            detail = outcome.stderr.data.decode(errors="replace")
            raise ZygoteFailed(f"{self.spec.name} zygote cannot run a call (exit {outcome.exit_code}): {detail}")

    async def stop(self) -> None:
        if self.reader is not None and self.reader is not asyncio.current_task():
            self.reader.cancel()
        self.reader = None
        self._lost("the zygote stopped")
        if self.process is not None:
            await self.process.stop()
            self.process = None

    def _lost(self, reason: str) -> None:
        """The zygote is gone: every call it was running fails (and runs cold), the next one restarts it."""
        self.joined.clear()
        if self.control is not None:
            if self.room is not None and not self.room.done():
                asyncio.get_running_loop().remove_writer(self.control.fileno())
                self.room.set_result(None)
            self.control.close()
            self.control = None
        for future in self.pending.values():
            if not future.done():
                future.set_result({"error": reason})
        self.pending.clear()

    async def _read(self, control: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                raw = await loop.sock_recv(control, MAX_REPORT)
            except OSError:
                raw = b""
            if not raw:
                break
            report = protocol.decode_report(raw)
            future = self.pending.pop(report.get("id", -1), None)
            if future is not None and not future.done():
                future.set_result(report)
        if self.control is control:
            log.warning("%s zygote exited; it starts again on the next call", self.spec.name)
            self.reader = None
            await self.stop()

    async def _connected(self) -> socket.socket:
        if self.control is None:
            async with self.starting:
                if self.control is None:
                    await self.start()
        assert self.control is not None
        return self.control

    async def _send(self, message: bytes, fds: list[int]) -> None:
        control = await self._connected()
        while True:
            try:
                socket.send_fds(control, [message], fds)
                return
            except BlockingIOError:
                # The zygote is behind on its socket: wait until it has room (a busy retry by each of
                # hundreds of waiting calls would become the worker's main work).
                await self._room(control)

    async def _room(self, control: socket.socket) -> None:
        """Until `control` is writable; all waiting senders share one watch of the descriptor."""
        if self.room is None or self.room.done():
            loop = asyncio.get_running_loop()
            room: asyncio.Future[None] = loop.create_future()

            def ready() -> None:
                loop.remove_writer(control.fileno())
                if not room.done():
                    room.set_result(None)

            loop.add_writer(control.fileno(), ready)
            self.room = room
        await asyncio.shield(self.room)

    async def run(
        self,
        slot: int,
        join_fds_of: Callable[[], list[int]],
        program: list[str],
        stdin: bytes,
        timeout_s: float,
        output_cap: int,
        rlimits: list[Rlimit],
        before_kill: Callable[[], None] = lambda: None,
    ) -> ProcessOutcome:
        """Run one call in `slot`. `join_fds_of` opens descriptors of the slot's cgroup: called only
        when this zygote does not hold them yet (the slot's first call since the zygote started), so
        a call costs no opens and passes only its three pipes. `before_kill` runs before a cancelled or
        overdue call is killed (its processes need a CPU to die on: the executor gives its group full
        weight again)."""
        self.calls += 1
        request: protocol.CallRequest = {
            "id": self.calls,
            "slot": slot,
            "argv": program,
            "timeout_s": timeout_s,
            "rlimits": rlimits,
            "niceness": CALL_NICENESS,
            "shm_bytes": self.tmp_bytes,
            "join": False,
        }
        answer_ready = asyncio.get_running_loop().create_future()
        self.pending[request["id"]] = answer_ready
        stdout = CapturedStream(output_cap, bytearray())
        stderr = CapturedStream(output_cap, bytearray())
        started = time.perf_counter()
        pipes = CallPipes(stdin, stdout, stderr)
        try:
            try:
                await self._send_call(request, pipes.child_ends, join_fds_of)
            except OSError as exc:
                raise ZygoteFailed(f"cannot reach the zygote: {exc}") from exc
            pipes.start()
            try:
                answer = await _answer(answer_ready, timeout_s + ANSWER_GRACE_S)
            except TimeoutError:
                # Stuck past its deadline: killing the slot's namespace kills the call.
                before_kill()
                await self._cancel(request)
                answer = {"timed_out": True, "signal": signal.SIGKILL}
            except asyncio.CancelledError:
                # The job was cancelled: the call dies, and is gone before its slot is wiped.
                before_kill()
                await asyncio.shield(self._cancel(request))
                raise
            await pipes.drained(IO_GRACE_S)
        finally:
            self.pending.pop(request["id"], None)
            pipes.close()
        if "error" in answer:
            # The zygote may have refused the call for want of the slot's cgroup descriptors (some did not
            # arrive): the slot's next call sends them again, rather than every later one running cold.
            self.joined.discard(slot)
            raise ZygoteFailed(str(answer["error"]))
        if answer.get("setup_failed"):
            raise ZygoteFailed(f"the call's sandbox could not be set up: {stderr.data[-500:].decode(errors='replace')}")
        elapsed_ms = (time.perf_counter() - started) * 1000
        return ProcessOutcome(
            exit_code=answer.get("exit_code"),
            signal=answer.get("signal"),
            timed_out=answer.get("timed_out", False),
            stdout=stdout,
            stderr=stderr,
            duration_ms=answer.get("duration_ms", elapsed_ms),
            cpu_ms=answer.get("cpu_ms"),
            max_rss_kb=answer.get("max_rss_kb"),
        )

    async def _send_call(
        self, request: protocol.CallRequest, stdio: list[int], join_fds_of: Callable[[], list[int]]
    ) -> None:
        """Send the request with the call's pipes, and the slot's cgroup descriptors if this zygote
        (the one connected now: a restarted one holds none) does not hold them yet."""
        await self._connected()
        slot = request["slot"]
        if slot in self.joined:
            await self._send(protocol.encode(request), stdio)
            return
        join_fds = join_fds_of()
        try:
            request["join"] = True
            await self._send(protocol.encode(request), [*stdio, *join_fds])
            self.joined.add(slot)
        finally:
            for fd in join_fds:
                os.close(fd)

    async def _cancel(self, request: protocol.CallRequest) -> None:
        """Kill the call's namespace and wait until the zygote says its processes are gone."""
        acknowledged = asyncio.get_running_loop().create_future()
        self.pending[request["id"]] = acknowledged
        cancel: protocol.Cancel = {"id": request["id"], "slot": request["slot"], "cancel": True}
        try:
            await self._send(protocol.encode(cancel), [])
            # The acknowledgement, or the call's own report if it ended first: either way it is over.
            await asyncio.wait_for(acknowledged, CANCEL_WAIT_S)
        except (OSError, TimeoutError) as exc:
            # No answer: the zygote itself is stuck; only a fresh one is sure to have killed the call.
            log.warning("%s zygote did not confirm a cancel (%r); restarting it", self.spec.name, exc)
            await self.stop()
        finally:
            self.pending.pop(request["id"], None)


async def _answer(answer: asyncio.Future[protocol.CallReport], timeout_s: float) -> protocol.CallReport:
    """The zygote's answer, or TimeoutError. Unlike `wait_for`, a time-out or a cancel leaves the future
    itself alone (no `shield`, one object less per call): the zygote may still answer it."""
    done, _ = await asyncio.wait((answer,), timeout=timeout_s)
    if not done:
        raise TimeoutError
    return answer.result()


class ZygotePool:
    """The zygotes of a worker: one heavy, and one lean per `lean_zygote_slots` slots, each slot's lean
    calls always in the same one (the slot's namespace lives there).

    Several lean ones, each an interpreter started on its own, not a fork of another: every process
    forked from one zygote shares the kernel's locks on that zygote's memory (the root `anon_vma` of
    each of its mappings, taken for writing in every fork and every exit), so with hundreds of calls
    starting and ending at once, one holder preempted at a low CPU weight (a killed loop exiting) holds
    up the forks and exits of every call of its zygote, and only of its zygote. One heavy: its image is
    ~58 MB of its own and takes a CPU-second or two to import (docs/reliability.md, issue 14).

    Every slot's lean namespace is made at start: making one joins the slot's cgroups, and on cgroup v1
    each join holds up every fork and exit of the host for an RCU grace period, which hundreds of busy
    calls stretch. They are kept however long they go unused (`LEAN.idle_s`), so a burst after a quiet
    spell finds them made too.

    With `images_dir`, each lean zygote maps its own copy of the interpreter and its libraries
    (`images.py`): the kernel's lock on a file's mappings, which every fork and exit takes, is then one
    per zygote too."""

    def __init__(
        self,
        profile: BwrapProfile,
        slots_dir: Path,
        uid: int | None,
        python_path: str,
        tmp_bytes: int,
        slots: int,
        lean_zygote_slots: int,
        images_dir: Path | None = None,
    ) -> None:
        self.python_path = python_path
        self.images_dir = images_dir
        self.slots = slots
        self.lean_zygote_slots = lean_zygote_slots
        count = -(-slots // lean_zygote_slots)
        self.lean = [Zygote(LEAN, profile, slots_dir, python_path, uid, tmp_bytes) for _ in range(count)]
        self.heavy = Zygote(HEAVY, profile, slots_dir, python_path, uid, tmp_bytes)

    def lean_for(self, slot: int) -> Zygote:
        """Consecutive slots share a lean zygote. The worker gives a call the slot freed last, so a light
        load keeps to one or two zygotes, whose code (each has its own copy of the interpreter) stays in
        the CPU's caches; a heavy one spreads over all of them, never more than `lean_zygote_slots` calls
        in one."""
        return self.lean[slot // self.lean_zygote_slots]

    async def start(self, join_fds_of: Callable[[int, str], list[int]], probe: list[Rlimit]) -> None:
        """Start them all, run one probe call in slot 0 (idle at start) of each kind (the other lean
        ones are the same program on the same host), then make the lean namespace of every other slot.
        `join_fds_of(slot, kind)` opens the descriptors of the slot's cgroup for that kind of call."""
        if self.images_dir is not None:
            images = await make_images(self.python_path, Path(__file__).parent, self.images_dir, len(self.lean))
            for zygote, image in zip(self.lean, images, strict=False):
                zygote.image = image
        await asyncio.gather(*(zygote.start() for zygote in (*self.lean, self.heavy)))
        for zygote in (self.lean_for(0), self.heavy):
            await zygote.probe(0, functools.partial(join_fds_of, 0, zygote.spec.name), probe)
        started = time.perf_counter()
        made = await asyncio.gather(*(self._make_namespace(slot, join_fds_of, probe) for slot in range(1, self.slots)))
        log.info(
            "made the lean namespaces of %d slots in %.2f s (%d failed: made on their first call)",
            len(made),
            time.perf_counter() - started,
            made.count(False),
        )

    async def _make_namespace(
        self, slot: int, join_fds_of: Callable[[int, str], list[int]], probe: list[Rlimit]
    ) -> bool:
        """One call that does nothing in `slot`: its zygote makes the slot's namespace for it, and keeps it."""
        try:
            outcome = await self.lean_for(slot).run(
                slot, functools.partial(join_fds_of, slot, LEAN.name), ["/bin/true"], b"", 10.0, 1024, probe
            )
        except ZygoteFailed:
            return False
        return outcome.exit_code == 0

    async def stop(self) -> None:
        await asyncio.gather(*(zygote.stop() for zygote in (*self.lean, self.heavy)))

    def pick(self, program: list[str], workspace: Path, slot: int) -> Zygote:
        return self.heavy if wants_heavy(program, workspace, self.python_path) else self.lean_for(slot)
