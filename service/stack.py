"""`sandpit up`: the whole service as local processes, kept running and stopped together.

Starts `redis-server` as a child (unless a Redis URL was given), one gateway and the requested number
of worker processes, each as `python -m service.cli ...` with the same settings. The children reach
that Redis through a Unix socket in its private data directory (TCP where that path is too long for a
socket's address): on one machine a round trip over a
socket costs each side less CPU than one over TCP loopback (which runs the TCP path on both ends), and
every call makes several. Redis also listens on a free loopback port, for `redis-cli` and for clients
that want TCP. Every child gets PR_SET_PDEATHSIG so none outlives this supervisor, even after a SIGKILL,
and its own process group, so a Ctrl-C reaches only the supervisor, which stops them in order.

`serve` supervises: a child that exits is started again after a backoff, and Redis keeps its
append-only file across its restarts, so queued and finished calls survive one. Only a role that
keeps exiting (a crash loop) stops the stack. Test fixtures use `start` instead: no restarts, so a
test that kills a process sees exactly what it did.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from service.config import Settings

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
REDIS_BACKLOG = 4096
# The embedded Redis's socket, in its data directory, unless its path is longer than a Unix socket's
# address takes (108 bytes with the NUL): then TCP.
REDIS_SOCKET = "redis.sock"
UNIX_PATH_MAX = 108
# Redis's timer ticks (`hz`, 10 a second by default) are most of what it spends idle: on this busy
# 2-core host a stack with nothing running cost its Redis 2.3-2.5 ms of CPU a second at 10, 1.3-1.5 ms
# at 5 (~4 us per call at 250 calls/s). A blocked read's timeout is noticed only on a tick, so ticks
# come at least as often as the shortest block a client asks for: 1 s with one shard (the worker's
# reads, its session BRPOP), 100 ms with several (a worker's read holding its last free slots,
# `SCARCE_BLOCK_MS`). A slow active-expire cycle may take a quarter of a tick's interval: 50 ms at 5.
REDIS_HZ_ONE_SHARD = 5
REDIS_HZ_SHARDS = 10
STOP_GRACE_S = 15.0
# Children stop in this order: the gateway answers its waiting callers while the workers still run,
# and both finish while Redis still runs.
STOP_ORDER = ("gateway", "worker", "redis")
POLL_S = 0.2
FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 10.0
# A child that ran this long before it exited was healthy: its next restart waits FIRST_BACKOFF_S again.
HEALTHY_AFTER_S = 30.0
# A role that exits this many times within CRASH_WINDOW_S is crash-looping; restarting it is pointless.
CRASH_LOOP_EXITS = 5
CRASH_WINDOW_S = 60.0


# How many connections the kernel may queue for a listener before it accepts them; the kernel caps
# the request at net.core.somaxconn.
SOMAXCONN = Path("/proc/sys/net/core/somaxconn")


def allow_open_files(needed: int = 0) -> int:
    """Lift the soft RLIMIT_NOFILE to the hard limit (and, as root, both to `needed` when that is more)
    and return the soft limit: every waiting call holds a socket, and under the usual soft limit of 1024
    the gateway would refuse (and reset) connections past ~1,000. Children started later inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and needed > hard:
        with contextlib.suppress(ValueError, PermissionError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (needed, needed))
            return needed
    if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def listen_backlog(wanted: int) -> int:
    """The accept queue a listener asking for `wanted` really gets on this host."""
    try:
        return min(wanted, int(SOMAXCONN.read_text()))
    except (OSError, ValueError):
        return wanted


def redis_hz(queue_shards: int) -> int:
    """How often the embedded Redis's timers tick (see REDIS_HZ_ONE_SHARD)."""
    return REDIS_HZ_ONE_SHARD if queue_shards == 1 else REDIS_HZ_SHARDS


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _die_with_parent() -> None:
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _wait_until(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not come up within {timeout_s:g}s")


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/readyz", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def describe_exit(code: int) -> str:
    if code < 0:
        return f"was killed by {signal.Signals(-code).name}"
    return f"exited with status {code}"


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment that gives a child process the same settings as `settings`."""
    dumped = settings.model_dump(mode="json")
    env = {f"SANDPIT_{name.upper()}": str(dumped[name]) for name in settings.model_fields_set}
    env["SANDPIT_REDIS_URL"] = settings.redis_url
    env["SANDPIT_PORT"] = str(settings.port)
    return env


# Sandbox uids of the i-th local worker start at sandbox_uid_base + i * UID_STRIDE: workers on one host
# must not share slot uids, or they share the per-uid process limit (and a fork bomb's effects).
UID_STRIDE = 2000


def worker_env(settings: Settings, index: int) -> dict[str, str]:
    """What differs between local workers: their sandbox uids, and their metrics ports."""
    env = {"SANDPIT_SANDBOX_UID_BASE": str(settings.sandbox_uid_base + index * UID_STRIDE)}
    if settings.worker_metrics_port != 0:
        env["SANDPIT_WORKER_METRICS_PORT"] = str(settings.worker_metrics_port + index)
    return env


@dataclass
class Child:
    """One child process of the stack: how to start it again, and how its restarts are going."""

    role: str
    name: str
    argv: list[str]
    env: dict[str, str]
    log_file: Path | None
    process: subprocess.Popen[bytes] = field(init=False)
    started_at: float = 0.0
    backoff_s: float = FIRST_BACKOFF_S
    restart_at: float | None = None

    def spawn(self) -> None:
        output = self.log_file.open("ab") if self.log_file is not None else None
        try:
            self.process = subprocess.Popen(
                self.argv,
                env=self.env,
                preexec_fn=_die_with_parent,
                process_group=0,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=output,
            )
        finally:
            if output is not None:
                output.close()
        self.started_at = time.monotonic()
        self.restart_at = None

    def schedule_restart(self, now: float) -> float:
        """Plan the next start after an exit; the delay doubles while the child keeps exiting early."""
        if now - self.started_at >= HEALTHY_AFTER_S:
            self.backoff_s = FIRST_BACKOFF_S
        delay = self.backoff_s
        self.restart_at = now + delay
        self.backoff_s = min(MAX_BACKOFF_S, delay * 2)
        return delay


class LocalStack:
    """Owns the child processes of one local deployment."""

    def __init__(self, settings: Settings, workers: int, redis_url_given: bool, log_dir: Path | None = None) -> None:
        self.settings = settings
        self.workers = workers
        self.redis_url_given = redis_url_given
        # Each child's stdout and stderr go to <log_dir>/<role>-<n>.log instead of this terminal.
        self.log_dir = log_dir
        self.children: list[Child] = []
        self.redis_dir: Path | None = None
        # The embedded Redis's loopback port and socket (see the module's docstring).
        self.redis_port: int | None = None
        self.redis_socket: Path | None = None
        self.stop_requested = False
        self.exits: defaultdict[str, deque[float]] = defaultdict(deque)

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.port}"

    def start(self) -> None:
        """Start every child and wait until the gateway is ready; a child exiting meanwhile fails it."""
        self._spawn_all()
        _wait_until(lambda: _ready(self.url) or self._child_died(), 60, "the gateway")
        if self._child_died():
            raise RuntimeError("a child process exited during start-up")

    def serve(self, on_ready: Callable[[], None]) -> int:
        """Start every child and keep them running until `request_stop` (0) or a crash loop (1).

        `on_ready` is called once, when the gateway first answers ready. The caller still calls `stop`.
        """
        try:
            self._spawn_all()
        except RuntimeError as exc:
            log.error("%s", exc)
            return 1
        announced = False
        while not self.stop_requested:
            if (crash_loop := self._revive_children()) is not None:
                log.error("%s: stopping the stack", crash_loop)
                return 1
            if not announced and _ready(self.url):
                on_ready()
                announced = True
            time.sleep(POLL_S)
        return 0

    def request_stop(self) -> None:
        """Make `serve` return; safe to call from a signal handler."""
        self.stop_requested = True

    def _spawn_all(self) -> None:
        # Inherited by every child: Redis, the gateway and the workers all hold one descriptor per client
        # or call.
        allow_open_files()
        if not self.redis_url_given:
            self._start_redis()
        env = {**os.environ, **settings_env(self.settings)}
        for index in range(self.workers):
            worker_argv = [sys.executable, "-m", "service.cli", "worker"]
            self._spawn("worker", worker_argv, {**env, **worker_env(self.settings, index)})
        self._spawn("gateway", [sys.executable, "-m", "service.cli", "gateway"], env)

    def _start_redis(self) -> None:
        redis_server = shutil.which("redis-server")
        if redis_server is None:
            raise RuntimeError("redis-server not found: install it (apt-get install redis-server) or set REDIS_URL")
        port = free_port()
        # The data dir outlives Redis's restarts (its append-only file is how calls survive one) and
        # is removed by `stop`.
        self.redis_dir = Path(tempfile.mkdtemp(prefix="sandpit-redis-"))
        socket_path = self.redis_dir / REDIS_SOCKET
        self.redis_socket = socket_path if len(bytes(socket_path)) < UNIX_PATH_MAX else None
        argv = [
            redis_server,
            *("--bind", "127.0.0.1", "--port", str(port), "--dir", str(self.redis_dir)),
            *("--save", "", "--appendonly", "yes", "--appendfsync", "everysec"),
            *("--protected-mode", "yes", "--loglevel", "warning"),
            *("--hz", str(redis_hz(self.settings.queue_shards))),
            # Redis's default of 511 is less than a gateway and many workers may open at once.
            *("--tcp-backlog", str(listen_backlog(REDIS_BACKLOG))),
        ]
        if self.redis_socket is not None:
            # Only this user may connect (the sandboxes run as others, and see no host path anyway).
            argv += ["--unixsocket", str(self.redis_socket), "--unixsocketperm", "700"]
        self.redis_port = port
        self._spawn("redis", argv, dict(os.environ))
        self._wait_for_redis()
        if self.redis_socket is None:
            self.settings.redis_url = f"redis://127.0.0.1:{port}/0"
        else:
            self.settings.redis_url = f"unix://{self.redis_socket}?db=0"

    def _wait_for_redis(self) -> None:
        """Until the embedded Redis answers on its port and has made its socket."""
        assert self.redis_port is not None
        port, socket_path = self.redis_port, self.redis_socket
        _wait_until(lambda: _port_open(port) and (socket_path is None or socket_path.exists()), 10, "redis-server")

    def _spawn(self, role: str, argv: list[str], env: dict[str, str]) -> None:
        name = f"{role}-{len(self.processes(role))}"
        log_file = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            log_file = self.log_dir / f"{name}.log"
        child = Child(role, name, argv, env, log_file)
        child.spawn()
        self.children.append(child)

    def processes(self, role: str) -> list[subprocess.Popen[bytes]]:
        return [child.process for child in self.children if child.role == role]

    def restart(
        self, process: subprocess.Popen[bytes], signum: int = signal.SIGTERM, pause_s: float = 0.0
    ) -> subprocess.Popen[bytes]:
        """Stop one child with `signum` (SIGKILL to simulate a crash), wait `pause_s`, start it again."""
        child = next(child for child in self.children if child.process is process)
        process.send_signal(signum)
        process.wait(STOP_GRACE_S)
        time.sleep(pause_s)
        child.spawn()
        if child.role == "redis":
            self._wait_for_redis()
        return child.process

    def _child_died(self) -> bool:
        return any(child.process.poll() is not None for child in self.children)

    def _revive_children(self) -> str | None:
        """Restart the children whose backoff is over and schedule those that exited; or name a crash loop."""
        now = time.monotonic()
        for child in self.children:
            if child.restart_at is not None:
                if now >= child.restart_at:
                    child.spawn()
                    log.info("%s restarted (pid %d)", child.name, child.process.pid)
                continue
            code = child.process.poll()
            if code is None:
                continue
            if self._crash_looping(child.role, now):
                return (
                    f"{child.name} (pid {child.process.pid}) {describe_exit(code)}, the {CRASH_LOOP_EXITS}th exit of"
                    f" a {child.role} within {CRASH_WINDOW_S:g}s: it is crash-looping (its output above says why)"
                )
            delay = child.schedule_restart(now)
            log.warning(
                "%s (pid %d) %s; restarting it in %gs", child.name, child.process.pid, describe_exit(code), delay
            )
        return None

    def _crash_looping(self, role: str, now: float) -> bool:
        exits = self.exits[role]
        exits.append(now)
        while exits[0] < now - CRASH_WINDOW_S:
            exits.popleft()
        return len(exits) >= CRASH_LOOP_EXITS

    def __enter__(self) -> LocalStack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def stop(self) -> None:
        for role in STOP_ORDER:
            stopping = [child for child in self.children if child.role == role]
            for child in stopping:
                if child.process.poll() is None:
                    child.process.send_signal(signal.SIGTERM)
            for child in stopping:
                try:
                    child.process.wait(STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    log.warning(
                        "%s (pid %d) did not stop within %gs; killing it", child.name, child.process.pid, STOP_GRACE_S
                    )
                    child.process.kill()
                    child.process.wait()
        if self.redis_dir is not None:
            shutil.rmtree(self.redis_dir, ignore_errors=True)
