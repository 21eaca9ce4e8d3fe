"""`POST /run_jupyter`: SandboxFusion's notebook call, served on a Sandpit session.

The cells run one after another in one session interpreter (`sessions.py`), so variables, imports and
files persist from cell to cell as in a Jupyter kernel. A small helper, defined in the session before
the first cell, runs each cell as a notebook does: the value of a last expression goes to `display`
as `text/plain`, an exception becomes an `error` entry (ename, evalue, traceback) and its traceback is
written to stderr, and later cells still run. The helper ends each cell's stdout with a record behind
a marker this request chose at random; the gateway splits it off. Files are written before the first
cell and read after the last by the same interpreter. The session ends with the request.

Like SandboxFusion, the answer is `Success` when every cell ran (whatever the cells raised), `Failed`
when the notebook ran out of time (`cell_timeout` or `total_timeout`) or the interpreter died, and
`SandboxError` when the service could not run it.
"""

from __future__ import annotations

import contextlib
import json
import secrets
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException
from pydantic import BaseModel, ConfigDict, Field, field_validator

from service.gateway.calls import NoLiveWorker, QueueUnavailable
from service.gateway.limits import LimitError
from service.gateway.run_code import CommandRunResult, CommandRunStatus, RunStatus
from service.gateway.sessions import ANSWER_GRACE_S, close_session, new_command, open_session, send_and_wait
from service.gateway.state import GatewayState, gateway_state
from service.models import (
    ExecutionResult,
    SessionAction,
    SessionInfo,
    SessionRequest,
    Status,
    check_workspace_files,
    check_workspace_path,
)
from service.queue.sessions import SessionStore

router = APIRouter(tags=["SandboxFusion compatibility"])
State = Annotated[GatewayState, Depends(gateway_state)]
MAX_CELLS = 1000

# Defined in the session's namespace before the first cell; the names are dunder so that cells do not
# trip over them. `Exception`, not `BaseException`: the session's own per-call timer must get through.
HELPER = r"""
def __sandpit_cell__(source, marker):
    import ast, json, linecache, os, sys, traceback
    record = {"display": [], "error": []}
    # Tracebacks then quote the cell's lines, as a notebook's do.
    linecache.cache["<cell>"] = (len(source), None, source.splitlines(True), "<cell>")
    try:
        tree = ast.parse(source, "<cell>", "exec")
        last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
        exec(compile(tree, "<cell>", "exec"), globals())
        if last is not None:
            value = eval(compile(ast.Expression(last.value), "<cell>", "eval"), globals())
            if value is not None:
                record["display"].append({"text/plain": repr(value)})
    except Exception as exc:
        tb = exc.__traceback__
        while tb is not None and tb.tb_frame.f_code.co_filename != "<cell>":
            tb = tb.tb_next
        lines = traceback.format_exception(type(exc), exc, tb)
        sys.stderr.write("".join(lines))
        record["error"].append({"ename": type(exc).__name__, "evalue": str(exc), "traceback": lines})
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except Exception:
            pass
    os.write(1, (marker + json.dumps(record)).encode())

def __sandpit_write_files__(files):
    import base64, os
    for path, content in files.items():
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "wb") as handle:
            handle.write(base64.b64decode(content))

def __sandpit_read_file__(path, marker):
    import base64, os
    try:
        with open(path, "rb") as handle:
            os.write(1, (marker + base64.b64encode(handle.read()).decode()).encode())
    except OSError:
        pass
"""


class RunJupyterRequest(BaseModel):
    # SandboxFusion's SDK sends every field of its model; unknown ones are ignored as /run_code does.
    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={
            "examples": [
                {
                    "cells": ["a = 123", "a", "print(a)", "raise RuntimeError('boom')"],
                    "cell_timeout": 0,
                    "total_timeout": 45,
                    "kernel": "python3",
                    "files": {},
                    "fetch_files": [],
                }
            ]
        },
    )

    cells: list[str] = Field(max_length=MAX_CELLS, description="Code cells, run in order in one interpreter")
    cell_timeout: float = Field(default=0, ge=0, description="Limit of each cell in seconds; 0: none but the total")
    total_timeout: float = Field(default=45, gt=0, description="Limit of all the cells together, in seconds")
    memory_limit_MB: int = Field(default=-1, description="-1: the service's default")
    kernel: Literal["python3"] = "python3"
    files: dict[str, str | None] = Field(default_factory=dict, description="path -> base64 content")
    fetch_files: list[str] = Field(default_factory=list, description="Paths returned (base64) after the last cell")

    @field_validator("files")
    @classmethod
    def _files_are_base64_at_safe_paths(cls, files: dict[str, str | None]) -> dict[str, str | None]:
        check_workspace_files({path: content or "" for path, content in files.items()})
        return files

    @field_validator("fetch_files")
    @classmethod
    def _fetch_paths_are_safe(cls, paths: list[str]) -> list[str]:
        return [check_workspace_path(path) for path in paths]


class CellRunResult(BaseModel):
    stdout: str
    stderr: str
    display: list[dict[str, Any]] = Field(description="Values of last expressions, by MIME type (`text/plain`)")
    error: list[dict[str, Any]] = Field(description="Exceptions: `ename`, `evalue`, `traceback` (lines)")


class RunJupyterResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "Success",
                    "message": "",
                    "driver": {
                        "status": "Finished",
                        "execution_time": 0.05,
                        "return_code": 0,
                        "stdout": "",
                        "stderr": "",
                    },
                    "cells": [
                        {"stdout": "", "stderr": "", "display": [], "error": []},
                        {"stdout": "", "stderr": "", "display": [{"text/plain": "123"}], "error": []},
                    ],
                    "executor_pod_name": "host-123-abc",
                    "files": {},
                }
            ]
        }
    )

    status: RunStatus
    message: str = ""
    driver: CommandRunResult | None = None
    cells: list[CellRunResult] = Field(default_factory=list)
    executor_pod_name: str | None = None
    files: dict[str, str] = Field(default_factory=dict)


class Notebook:
    """One request's cells on one session: the time left, the cells' results, how it ended."""

    def __init__(self, state: GatewayState, session: SessionInfo, request: RunJupyterRequest) -> None:
        self.state = state
        self.session = session
        self.request = request
        self.store = SessionStore(state.queue)
        self.marker = f"\n\x00sandpit-{secrets.token_hex(16)}\x00"
        self.started = time.monotonic()
        self.deadline = self.started + request.total_timeout
        self.cells: list[CellRunResult] = []

    async def run(self) -> RunJupyterResponse:
        setup = await self.send(HELPER + self.write_files_code(), self.state.settings.max_timeout_s)
        if setup.status != Status.ok:
            return self.failed(CommandRunStatus.Error, f"the notebook could not start: {setup.reason or setup.stderr}")
        for cell in self.request.cells:
            left_s = self.deadline - time.monotonic()
            if left_s <= 0:
                return self.failed(CommandRunStatus.TimeLimitExceeded, "total_timeout reached before every cell ran")
            timeout_s = min(left_s, self.request.cell_timeout or left_s, self.state.settings.max_timeout_s)
            result = await self.send(f"__sandpit_cell__({cell!r}, {self.marker!r})", timeout_s)
            self.cells.append(self.cell_result(result))
            if result.status == Status.timeout:
                return self.failed(CommandRunStatus.TimeLimitExceeded, f"a cell ran longer than {timeout_s:g} s")
            if result.status in (Status.session_lost, Status.sandbox_error):
                return self.failed(CommandRunStatus.Error, result.reason or "the interpreter died")
        return RunJupyterResponse(
            status=RunStatus.Success,
            driver=self.driver(CommandRunStatus.Finished),
            cells=self.cells,
            executor_pod_name=self.session.worker,
            files=await self.fetch_files(),
        )

    async def send(self, code: str, timeout_s: float) -> ExecutionResult:
        command = new_command(self.state, self.session.id, SessionAction.execute, code=code, timeout_s=timeout_s)
        return await send_and_wait(self.state, self.store, self.session.worker, command, timeout_s + ANSWER_GRACE_S)

    def write_files_code(self) -> str:
        files = {path: content or "" for path, content in self.request.files.items()}
        return f"\n__sandpit_write_files__({files!r})\n" if files else ""

    def cell_result(self, result: ExecutionResult) -> CellRunResult:
        stdout, marker, record_text = result.stdout.rpartition(self.marker)
        record: dict[str, list[dict[str, Any]]] = {"display": [], "error": []}
        if marker:
            with contextlib.suppress(ValueError):
                record = json.loads(record_text)
        else:
            stdout = result.stdout
        if result.status == Status.timeout:
            record["error"].append({"ename": "TimeoutError", "evalue": "the cell ran out of time", "traceback": []})
        return CellRunResult(stdout=stdout, stderr=result.stderr, display=record["display"], error=record["error"])

    async def fetch_files(self) -> dict[str, str]:
        files: dict[str, str] = {}
        for path in self.request.fetch_files:
            result = await self.send(f"__sandpit_read_file__({path!r}, {self.marker!r})", ANSWER_GRACE_S)
            _, marker, content = result.stdout.rpartition(self.marker)
            # A file larger than the output cap would arrive cut short: it is left out, not corrupted.
            if result.status == Status.ok and marker and not result.truncated:
                files[path] = content
        return files

    def driver(self, status: CommandRunStatus, stderr: str = "") -> CommandRunResult:
        finished = status == CommandRunStatus.Finished
        elapsed_s = round(time.monotonic() - self.started, 6)
        return CommandRunResult(
            status=status, execution_time=elapsed_s, return_code=0 if finished else None, stdout="", stderr=stderr
        )

    def failed(self, status: CommandRunStatus, message: str) -> RunJupyterResponse:
        return RunJupyterResponse(
            status=RunStatus.Failed,
            message=message,
            driver=self.driver(status, message),
            cells=self.cells,
            executor_pod_name=self.session.worker,
        )


@router.post(
    "/run_jupyter",
    response_model=RunJupyterResponse,
    summary="SandboxFusion-compatible: run notebook cells in one interpreter, per-cell outputs and errors",
    responses={
        422: {"description": "Malformed request (bad types, unsafe paths, limits out of range)"},
        503: {"description": "No live worker, or none with room for another session; retry later"},
    },
)
async def run_jupyter(request: RunJupyterRequest, state: State) -> RunJupyterResponse:
    check_limits(request, state)
    # As /run_code does: SandboxFusion has no maximum, so a larger ask runs at ours.
    memory_mb = min(request.memory_limit_MB, state.settings.max_memory_mb) if request.memory_limit_MB > 0 else None
    session = await open_session(SessionRequest(memory_mb=memory_mb), state)
    try:
        return await Notebook(state, session, request).run()
    except HTTPException as exc:
        return RunJupyterResponse(status=RunStatus.SandboxError, message=str(exc.detail))
    finally:
        with contextlib.suppress(HTTPException, QueueUnavailable, NoLiveWorker):
            await close_session(session.id, state)


def check_limits(request: RunJupyterRequest, state: GatewayState) -> None:
    settings = state.settings
    if request.total_timeout > settings.max_judge_s:
        raise LimitError("total_timeout", f"total_timeout must be at most {settings.max_judge_s:g}")
    if sum(len(cell.encode()) for cell in request.cells) > settings.max_code_bytes:
        raise LimitError("cells", f"the cells must be at most {settings.max_code_bytes} bytes together")
    if len(request.files) + len(request.fetch_files) > settings.max_files:
        raise LimitError("files", f"at most {settings.max_files} files may be sent and fetched")
    if sum(len(content or "") * 3 // 4 for content in request.files.values()) > settings.max_files_bytes:
        raise LimitError("files", f"files must be at most {settings.max_files_bytes} bytes in total")
