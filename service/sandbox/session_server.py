"""The interpreter of one session, running inside its sandbox (passed to `python3 -c`, never imported).

It reads one JSON request per line on the protocol pipe (its original stdin) and answers one JSON line
on the other (its original stdout). The code of each request runs in one namespace that persists
between requests, with fds 1 and 2 pointed at fresh capture files, so prints, C extensions and child
processes are all captured. If the last statement is an expression, its repr is printed, as in a
notebook. A per-call timer interrupts code that runs too long; the worker kills the whole sandbox if
even that does not stop it. What this process reports is only as trustworthy as the code it runs.
"""

import ast
import contextlib
import json
import os
import signal
import sys
import time
import traceback
from typing import Any

CAPTURE_DIR = "/tmp"


class CallTimeout(BaseException):
    """A BaseException, so that user code's `except Exception` does not swallow it."""


def on_alarm(_signum: int, _frame: Any) -> None:
    raise CallTimeout


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


def serve() -> None:
    requests = os.fdopen(os.dup(0), "r", encoding="utf-8")
    answers = os.fdopen(os.dup(1), "w", encoding="utf-8")
    quiet = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(quiet, fd)
    signal.signal(signal.SIGALRM, on_alarm)
    namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": __builtins__}
    answers.write(json.dumps({"ready": True}) + "\n")
    answers.flush()
    for line in requests:
        answers.write(json.dumps(call(json.loads(line), namespace, quiet)) + "\n")
        answers.flush()


serve()
