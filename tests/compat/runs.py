"""How a program is run for the fidelity tests: bare (the reference), and forked from a warm interpreter.

The reference is what a user gets by hand: `python3 main.py` with the current directory a fresh, empty
temporary directory holding only `main.py`, stdin, stdout and stderr pipes, and the sandbox's environment
(`SANDBOX_ENV`) less what no normal machine has: `HOME` is that directory, and `PYTHONUNBUFFERED` is
left out (a normal machine has it unset, so Python's stdout to a pipe is block-buffered; the sandbox's
own interpreter never sees it either, as it runs with -I). The directory's path is the only thing
normalised: it reads `/workspace`, where the sandbox keeps `main.py`.

`run_forked` is the zygote in miniature: a `python3 -I -B` that imported `python_main` (and `random`,
as the zygotes' preloads do) and froze its objects, whose own standard streams differ from the call's,
forks a few frames deep; the child calls `prepare()`, takes the call's pipes as its descriptors 0-2 and
calls `run_python("main.py")`; the parent reports the child's wait status.
"""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from service.config import Settings
from service.languages import WORKSPACE
from service.sandbox.bwrap import SANDBOX_ENV

PYTHON = Settings().python_path
PROGRAMS = Path(__file__).parent / "programs"
SANDBOX_DIR = Path(__file__).resolve().parents[2] / "service" / "sandbox"
RUN_TIMEOUT_S = 60.0

# argv: the directory of python_main, the call's stdin, stdout and stderr, the status pipe, preloads.
FORKING_INTERPRETER = """
import gc, os, signal, sys
sys.path.insert(0, sys.argv[1])
from python_main import prepare, run_python
for module in sys.argv[6:]:
    __import__(module)
sys.stdout.reconfigure(line_buffering=True, write_through=True)
signal.signal(signal.SIGINT, signal.SIG_DFL)
gc.collect()
gc.freeze()

def fork_call(depth):
    if depth:
        return fork_call(depth - 1)
    call_fds = list(map(int, sys.argv[2:5]))
    pid = os.fork()
    if pid == 0:
        prepare()
        for target, fd in enumerate(call_fds):
            os.dup2(fd, target)
        os.closerange(3, 65536)
        os._exit(run_python("main.py"))
    for fd in call_fds:
        os.close(fd)
    return os.waitpid(pid, 0)[1]

os.write(int(sys.argv[5]), str(fork_call(8)).encode())
"""


@dataclass(frozen=True)
class Run:
    stdout: str
    stderr: str
    exit_code: int | None
    signal: int | None

    @classmethod
    def of(cls, stdout: bytes, stderr: bytes, exit_code: int, directory: str) -> Run:
        """With the service's view of it: text decoded as UTF-8 (bad bytes replaced), the run's
        directory shown as the workspace, an exit code or a signal (`exit_code` < 0, as subprocess)."""
        return cls(
            stdout=as_workspace(stdout, directory),
            stderr=as_workspace(stderr, directory),
            exit_code=exit_code if exit_code >= 0 else None,
            signal=-exit_code if exit_code < 0 else None,
        )


def as_workspace(output: bytes, directory: str) -> str:
    return output.decode("utf-8", errors="replace").replace(directory, WORKSPACE)


def reference_env(directory: str) -> dict[str, str]:
    env = {name: value for name, value in SANDBOX_ENV.items() if name != "PYTHONUNBUFFERED"}
    return {**env, "HOME": directory}


def program_names() -> list[str]:
    return sorted(path.stem for path in PROGRAMS.glob("*.py"))


def program_source(name: str) -> str:
    return (PROGRAMS / f"{name}.py").read_text()


def program_stdin(name: str) -> str:
    stdin = PROGRAMS / f"{name}.stdin"
    return stdin.read_text() if stdin.exists() else ""


@functools.cache
def bare_program_run(name: str) -> Run:
    """The reference run of a corpus program, once per test session."""
    return run_bare(program_source(name), program_stdin(name))


@contextlib.contextmanager
def fresh_directory(source: str) -> Iterator[str]:
    """An empty temporary directory holding only main.py, removed afterwards."""
    directory = tempfile.mkdtemp(prefix="sandpit-compat-")
    try:
        Path(directory, "main.py").write_text(source)
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def run_bare(source: str, stdin: str = "") -> Run:
    with fresh_directory(source) as directory:
        done = subprocess.run(
            [PYTHON, "main.py"],
            cwd=directory,
            env=reference_env(directory),
            input=stdin.encode(),
            capture_output=True,
            timeout=RUN_TIMEOUT_S,
        )
        return Run.of(done.stdout, done.stderr, done.returncode, directory)


def run_forked(source: str, stdin: str = "", preload: tuple[str, ...] = ("random",)) -> Run:
    with fresh_directory(source) as directory, tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        call_stdin, feed = os.pipe()
        status_read, status_write = os.pipe()
        # The call's stdout and stderr are pipes, as in the service: `cat`s relay them into files.
        with relay_into(out) as call_stdout, relay_into(err) as call_stderr:
            call_fds = (call_stdin, call_stdout, call_stderr)
            arguments = [str(SANDBOX_DIR), *map(str, (*call_fds, status_write)), *preload]
            zygote = subprocess.Popen(
                [PYTHON, "-I", "-B", "-c", FORKING_INTERPRETER, *arguments],
                cwd=directory,
                env=reference_env(directory),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                pass_fds=(*call_fds, status_write),
            )
            for fd in (call_stdin, call_stdout, call_stderr, status_write):
                os.close(fd)
            with os.fdopen(feed, "wb") as stdin_pipe, contextlib.suppress(BrokenPipeError):
                stdin_pipe.write(stdin.encode())
            zygote.wait(RUN_TIMEOUT_S)
        with os.fdopen(status_read, "rb") as status:
            exit_code = os.waitstatus_to_exitcode(int(status.read()))
        out.seek(0)
        err.seek(0)
        return Run.of(out.read(), err.read(), exit_code, directory)


@contextlib.contextmanager
def relay_into(target: IO[bytes]) -> Iterator[int]:
    """The write end of a pipe whose bytes `cat` copies into `target`; waits for `cat` at the end, once
    every copy of the write end (the caller's to close, its children's) is gone."""
    relay = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=target)
    assert relay.stdin is not None
    write_end = os.dup(relay.stdin.fileno())
    relay.stdin.close()
    try:
        yield write_end
    finally:
        relay.wait(RUN_TIMEOUT_S)
