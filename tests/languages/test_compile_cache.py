"""The compile cache on its own: a build is kept by content, served to the next identical program, shared
with calls that arrive while it compiles, bounded, and never keeps a timeout."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from service.models import StageResult, Status
from service.sandbox.compile_cache import CompileCache, compile_key

MB = 1024 * 1024


class FakeCompiler:
    """Writes `main` (of `size` bytes) into the workspace the way a compiler would, and counts its runs."""

    def __init__(self, workspace: Path, status: Status = Status.ok, size: int = 10, delay_s: float = 0.0) -> None:
        self.workspace = workspace
        self.status = status
        self.size = size
        self.delay_s = delay_s
        self.runs = 0

    async def __call__(self) -> StageResult:
        self.runs += 1
        await asyncio.sleep(self.delay_s)
        if self.status == Status.ok:
            (self.workspace / "main").write_bytes(b"x" * self.size)
            (self.workspace / "main").chmod(0o755)
            (self.workspace / "pkg").mkdir(exist_ok=True)
            (self.workspace / "pkg" / "Helper.class").write_bytes(b"class")
        return StageResult(status=self.status, exit_code=0 if self.status == Status.ok else 1, duration_ms=250.0)


def workspace_with_source(root: Path, name: str) -> Path:
    workspace = root / name
    workspace.mkdir()
    (workspace / "main.c").write_text("int main(){}")
    return workspace


def key(source: str = "int main(){}", files: dict[str, str] | None = None) -> str:
    return compile_key("c", ["gcc", "main.c"], "main.c", source, files or {})


async def test_the_second_identical_program_gets_the_first_ones_build(tmp_path: Path) -> None:
    cache = CompileCache(tmp_path / "cache", 10 * MB, 10)
    first, second = workspace_with_source(tmp_path, "a"), workspace_with_source(tmp_path, "b")
    compiler = FakeCompiler(first)
    built = await cache.compiled(key(), first, None, compiler)
    reused = await cache.compiled(key(), second, None, FakeCompiler(second))
    assert compiler.runs == 1 and (cache.hits, cache.misses) == (1, 1)
    assert built.duration_ms == 250.0 and reused.duration_ms == 0.0 and reused.status == Status.ok
    assert (second / "main").read_bytes() == b"x" * 10 and os.access(second / "main", os.X_OK)
    assert (second / "pkg" / "Helper.class").read_bytes() == b"class"


async def test_calls_that_arrive_while_it_compiles_wait_for_that_build(tmp_path: Path) -> None:
    cache = CompileCache(tmp_path / "cache", 10 * MB, 10)
    workspaces = [workspace_with_source(tmp_path, f"w{i}") for i in range(8)]
    compilers = [FakeCompiler(workspace, delay_s=0.2) for workspace in workspaces]
    stages = await asyncio.gather(
        *(cache.compiled(key(), w, None, c) for w, c in zip(workspaces, compilers, strict=True))
    )
    assert sum(compiler.runs for compiler in compilers) == 1
    assert all(stage.status == Status.ok for stage in stages)
    assert all((workspace / "main").exists() for workspace in workspaces)


async def test_a_compile_error_is_kept_and_a_timeout_is_not(tmp_path: Path) -> None:
    cache = CompileCache(tmp_path / "cache", 10 * MB, 10)
    workspace = workspace_with_source(tmp_path, "a")
    broken = FakeCompiler(workspace, Status.error)
    for _ in range(2):
        assert (await cache.compiled(key("broken"), workspace, None, broken)).status == Status.error
    slow = FakeCompiler(workspace, Status.timeout)
    for _ in range(2):
        assert (await cache.compiled(key("slow"), workspace, None, slow)).status == Status.timeout
    assert (broken.runs, slow.runs) == (1, 2)


def test_the_key_covers_source_files_and_command() -> None:
    base = key()
    assert key("int main(){return 1;}") != base
    assert key(files={"util.h": "I2RlZmluZQ=="}) != base
    assert compile_key("c", ["gcc", "-O0", "main.c"], "main.c", "int main(){}", {}) != base
    assert key() == base


async def test_least_recently_used_builds_go_first_past_the_entry_bound(tmp_path: Path) -> None:
    cache = CompileCache(tmp_path / "cache", 100 * MB, 2)
    keys = [key(f"program {i}") for i in range(3)]
    for index, each in enumerate(keys):
        workspace = workspace_with_source(tmp_path, f"w{index}")
        await cache.compiled(each, workspace, None, FakeCompiler(workspace))
        if index == 1:
            # Use the first again: the second is now the least recently used.
            await cache.compiled(keys[0], workspace, None, FakeCompiler(workspace))
    assert list(cache.builds) == [keys[0], keys[2]]
    assert not (cache.root / keys[1]).exists()


async def test_builds_go_oldest_first_past_the_byte_bound(tmp_path: Path) -> None:
    cache = CompileCache(tmp_path / "cache", MB, 100)
    keys = [key(f"program {i}") for i in range(5)]
    for index, each in enumerate(keys):
        workspace = workspace_with_source(tmp_path, f"w{index}")
        await cache.compiled(each, workspace, None, FakeCompiler(workspace, size=250_000))
    assert cache.size <= MB
    assert keys[0] not in cache.builds and keys[4] in cache.builds and not (cache.root / keys[0]).exists()


async def test_a_build_too_big_for_a_quarter_of_the_cache_is_not_kept(tmp_path: Path) -> None:
    cache = CompileCache(tmp_path / "cache", 4 * MB, 10)
    workspace = workspace_with_source(tmp_path, "a")
    compiler = FakeCompiler(workspace, size=2 * MB)
    await cache.compiled(key(), workspace, None, compiler)
    await cache.compiled(key(), workspace, None, compiler)
    assert compiler.runs == 2 and not cache.builds


async def test_a_file_sent_with_the_call_that_the_compile_rewrites_is_an_output(tmp_path: Path) -> None:
    cache = CompileCache(tmp_path / "cache", 10 * MB, 10)
    first, second = workspace_with_source(tmp_path, "a"), workspace_with_source(tmp_path, "b")
    for workspace in (first, second):
        (workspace / "main").write_bytes(b"sent with the call")
        (workspace / "data.txt").write_bytes(b"input only")
    await cache.compiled(key(), first, None, FakeCompiler(first))
    await cache.compiled(key(), second, None, FakeCompiler(second))
    assert (second / "main").read_bytes() == b"x" * 10
    assert "data.txt" not in next(iter(cache.builds.values())).outputs
