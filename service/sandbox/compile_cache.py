"""Compile once per distinct program on a worker: a bounded, content-addressed cache of build outputs.

A GRPO group sends the same program many times, and a judge job runs one program on many inputs: the
compiler's work is the same each time. The key is a hash of everything that decides what the compiler
produces: the language, the compile command as filled in, the source's name and text, and every file
sent with the call (a header, a module). A successful build's outputs (the files the compile created
or changed in the workspace) are kept under the key; a failed build keeps only its
message, so identical broken code also fails at once. Timeouts and memory kills are not kept: they
may depend on the load of the moment.

Calls with the same key that arrive while it compiles wait for that one build instead of starting
their own. The cache holds at most `max_bytes` of outputs and `max_entries` builds, least recently used
first out; it lives in the worker's sandbox directory and goes with it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import shutil
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

from service.models import StageResult, Status

KEPT = (Status.ok, Status.error)


def compile_key(language: str, argv: list[str], source_path: str, source: str, files: dict[str, str]) -> str:
    """The identity of a build: what the compiler is given (the files' base64 as the call sent them)."""
    digest = hashlib.sha256()
    header = {"language": language, "argv": argv, "source_path": source_path, "files": sorted(files)}
    digest.update(json.dumps(header, sort_keys=True).encode())
    digest.update(hashlib.sha256(source.encode()).digest())
    for path in sorted(files):
        digest.update(hashlib.sha256(files[path].encode()).digest())
    return digest.hexdigest()


@dataclass(frozen=True)
class Build:
    stage: StageResult
    # Output files, relative to the workspace, saved under the entry's directory.
    outputs: tuple[str, ...]
    size: int


class CompileCache:
    def __init__(self, root: Path, max_bytes: int, max_entries: int) -> None:
        self.root = root
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        self.builds: OrderedDict[str, Build] = OrderedDict()
        self.building: dict[str, asyncio.Future[Build | None]] = {}
        self.size = 0
        self.hits = 0
        self.misses = 0

    async def compiled(
        self,
        key: str,
        workspace: Path,
        owner: int | None,
        compile_now: Callable[[], Awaitable[StageResult]],
    ) -> StageResult:
        """The compile stage of `key` with its outputs in `workspace` (owned by `owner`): kept, or built now."""
        while True:
            build = self._hit(key)
            if build is not None:
                self.hits += 1
                self._restore(key, build, workspace, owner)
                return build.stage.model_copy(update={"duration_ms": 0.0, "cpu_ms": 0.0, "peak_memory_kb": None})
            pending = self.building.get(key)
            if pending is None:
                break
            # Another call is compiling the same program: its build serves this one too (or, if it
            # was not kept, this call compiles for itself on the next round).
            if await asyncio.shield(pending) is None:
                break
        self.misses += 1
        return await self._build(key, workspace, compile_now)

    def _hit(self, key: str) -> Build | None:
        build = self.builds.get(key)
        if build is not None:
            self.builds.move_to_end(key)
        return build

    async def _build(self, key: str, workspace: Path, compile_now: Callable[[], Awaitable[StageResult]]) -> StageResult:
        done: asyncio.Future[Build | None] = asyncio.get_running_loop().create_future()
        first = key not in self.building
        if first:
            self.building[key] = done
        kept: Build | None = None
        before = file_states(workspace)
        try:
            stage = await compile_now()
            if first and stage.status in KEPT:
                kept = self._keep(key, workspace, before, stage)
            return stage
        finally:
            if first:
                del self.building[key]
                done.set_result(kept)

    def _keep(self, key: str, workspace: Path, before: dict[str, FileState], stage: StageResult) -> Build | None:
        after = file_states(workspace) if stage.status == Status.ok else {}
        outputs = [path for path, state in after.items() if before.get(path) != state]
        size = sum((workspace / path).stat().st_size for path in outputs)
        if size > self.max_bytes // 4:
            return None
        entry = self.root / key
        shutil.rmtree(entry, ignore_errors=True)
        for path in outputs:
            (entry / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(workspace / path, entry / path)
        build = Build(stage, tuple(outputs), size)
        self.builds[key] = build
        self.size += size
        self._evict()
        return build

    def _restore(self, key: str, build: Build, workspace: Path, owner: int | None) -> None:
        for path in build.outputs:
            target = workspace / path
            for directory in reversed(target.relative_to(workspace).parents[:-1]):
                made = workspace / directory
                if not made.exists():
                    made.mkdir()
                    if owner is not None:
                        os.chown(made, owner, owner)
            shutil.copy2(self.root / key / path, target)
            if owner is not None:
                os.chown(target, owner, owner)

    def _evict(self) -> None:
        while self.builds and (self.size > self.max_bytes or len(self.builds) > self.max_entries):
            key, build = self.builds.popitem(last=False)
            self.size -= build.size
            shutil.rmtree(self.root / key, ignore_errors=True)


FileState = tuple[int, int]


def file_states(workspace: Path) -> dict[str, FileState]:
    """Regular files in the workspace (relative path -> modification time and size): an output is a file
    the compile created or rewrote, even one that has the name of a file sent with the call."""
    found = {}
    for directory, _, names in os.walk(workspace):
        for name in names:
            path = Path(directory) / name
            if path.is_file() and not path.is_symlink():
                status = path.stat()
                found[str(path.relative_to(workspace))] = (status.st_mtime_ns, status.st_size)
    return found
