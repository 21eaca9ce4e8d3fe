"""`sandpit up`: the whole service as local processes, stopped together.

Starts `redis-server` as a child on a free loopback port (unless a Redis URL was given), one gateway
and the requested number of worker processes, each as `python -m service.cli ...` with the same
settings. Every child gets PR_SET_PDEATHSIG so none outlives this supervisor, even after a SIGKILL.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from service.config import Settings

log = logging.getLogger(__name__)

PR_SET_PDEATHSIG = 1
STOP_GRACE_S = 15.0


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


class LocalStack:
    """Owns the child processes of one local deployment."""

    def __init__(self, settings: Settings, workers: int, redis_url_given: bool, log_dir: Path | None = None) -> None:
        self.settings = settings
        self.workers = workers
        self.redis_url_given = redis_url_given
        # Each child's stdout and stderr go to <log_dir>/<role>-<n>.log instead of this terminal.
        self.log_dir = log_dir
        self.children: list[tuple[str, subprocess.Popen[bytes], dict[str, str]]] = []
        self.redis_dir: Path | None = None

    @property
    def url(self) -> str:
        return f"http://{self.settings.host}:{self.settings.port}"

    def start(self) -> None:
        if not self.redis_url_given:
            self._start_redis()
        env = {**os.environ, **settings_env(self.settings)}
        for index in range(self.workers):
            self._spawn(
                "worker", [sys.executable, "-m", "service.cli", "worker"], {**env, **worker_env(self.settings, index)}
            )
        self._spawn("gateway", [sys.executable, "-m", "service.cli", "gateway"], env)
        _wait_until(lambda: _ready(self.url) or self._child_died(), 60, "the gateway")
        if self._child_died():
            raise RuntimeError("a child process exited during start-up")

    def _start_redis(self) -> None:
        redis_server = shutil.which("redis-server")
        if redis_server is None:
            raise RuntimeError("redis-server not found: install it (apt-get install redis-server) or set REDIS_URL")
        port = free_port()
        self.redis_dir = Path(tempfile.mkdtemp(prefix="sandpit-redis-"))
        argv = [
            redis_server,
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--dir",
            str(self.redis_dir),
            "--save",
            "",
            "--appendonly",
            "yes",
            "--protected-mode",
            "yes",
            "--loglevel",
            "warning",
        ]
        self._spawn("redis", argv, dict(os.environ))
        _wait_until(lambda: _port_open(port), 10, "redis-server")
        self.settings.redis_url = f"redis://127.0.0.1:{port}/0"

    def _spawn(self, role: str, argv: list[str], env: dict[str, str]) -> None:
        output = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            output = (self.log_dir / f"{role}-{len(self.processes(role))}.log").open("ab")
        child = subprocess.Popen(argv, env=env, preexec_fn=_die_with_parent, stdout=output, stderr=output)
        if output is not None:
            output.close()
        self.children.append((role, child, env))

    def processes(self, role: str) -> list[subprocess.Popen[bytes]]:
        return [child for child_role, child, _ in self.children if child_role == role]

    def restart(
        self, process: subprocess.Popen[bytes], signum: int = signal.SIGTERM, pause_s: float = 0.0
    ) -> subprocess.Popen[bytes]:
        """Stop one child with `signum` (SIGKILL to simulate a crash), wait `pause_s`, start it again."""
        index = next(i for i, (_, child, _) in enumerate(self.children) if child is process)
        role, _, env = self.children[index]
        process.send_signal(signum)
        process.wait(STOP_GRACE_S)
        time.sleep(pause_s)
        replacement = subprocess.Popen(process.args, env=env, preexec_fn=_die_with_parent)
        self.children[index] = (role, replacement, env)
        if role == "redis":
            port = int(self.settings.redis_url.rsplit(":", 1)[1].split("/")[0])
            _wait_until(lambda: _port_open(port), 10, "redis-server")
        return replacement

    def _child_died(self) -> bool:
        return any(child.poll() is not None for _, child, _ in self.children)

    def wait(self) -> int:
        """Block until a child exits on its own; return its exit code."""
        while True:
            for role, child, _ in self.children:
                code = child.poll()
                if code is not None:
                    log.error("%s (pid %d) exited with %s", role, child.pid, code)
                    return code or 1
            time.sleep(0.2)

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
        # Gateway and workers first (newest first) so they finish their calls while Redis still runs.
        for _, child, _ in reversed(self.children):
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)
            try:
                child.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        if self.redis_dir is not None:
            shutil.rmtree(self.redis_dir, ignore_errors=True)
