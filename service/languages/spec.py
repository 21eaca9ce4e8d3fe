"""What one language is, as data: `LanguageSpec`, and how its commands are filled in for one call.

Commands are argv templates seen from inside the sandbox (the workspace is `/workspace`, the working
directory). Their placeholders are filled per call by `Invocation`:

- `{source}`: the file the code is written to; `{main}`: its stem, which for Java and Scala is the
  class the code declares (`public class Solution` runs as `Solution`);
- `{memory_mb}`: the stage's memory limit; `{heap_mb}`: what the runtime's own heap may take of it
  (the limit less `heap_reserve_mb` for the runtime itself), so a JVM or V8 heap follows the call's
  `memory_mb` instead of sizing itself from the host's memory, which the sandbox cannot see;
- `{database}`: for SQL, the database file sent with the call (else an in-memory one).

A language's `env` is set by running its commands through `/usr/bin/env`, so neither bubblewrap nor
the warm zygote needs to know about it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import PurePosixPath

ENV = "/usr/bin/env"
MIN_HEAP_MB = 16


@dataclass(frozen=True)
class Invocation:
    """What the commands of one call are filled in with."""

    code: str
    memory_mb: int
    files: Iterable[str] = ()


@dataclass(frozen=True)
class LanguageSpec:
    # The name calls use (`Language`'s value) and how people write it.
    name: str
    title: str
    # Where the code is written, relative to the workspace; `{main}` as in the commands.
    source_file: str
    run: tuple[str, ...]
    compile: tuple[str, ...] | None = None
    # argv whose first line of output (stdout, else stderr) names the toolchain's version.
    version: tuple[str, ...] = ()
    # Other names `/run_code` accepts for it: SandboxFusion's, and common spellings.
    aliases: tuple[str, ...] = ()
    # Environment of its commands (compile and run), beyond the sandbox's own.
    env: tuple[tuple[str, str], ...] = ()
    # Memory the runtime needs beside the heap it is told it may use (`{heap_mb}`).
    heap_reserve_mb: int = 0
    # The runtime reserves far more address space than it uses (JVM, Go, V8, Mono): without a cgroup,
    # RLIMIT_AS would refuse it, so the rlimit fallback grants this much more address space and lets the
    # runtime's own memory flag hold the call to its `memory_mb`.
    reserved_address_space_mb: int = 0
    # What the runtime prints when its own heap limit refused memory: the call's `memory_limit`.
    memory_markers: tuple[bytes, ...] = ()
    # Files of /etc its toolchain reads (Debian links them from /usr/lib/...); the sandbox shows these.
    host_etc: tuple[str, ...] = ()
    # The name of `{main}` for this code, when the code decides it (Java's public class).
    main_of: Callable[[str], str] | None = None
    # What the code needs added to run as its users expect (PHP's opening tag).
    source_of: Callable[[str], str] | None = None
    # A test-runner mode: the run is the test runner, and success means every test passed.
    test_runner: bool = False
    notes: str = ""
    # Toolchain binaries that must exist for the language to be offered.
    requires: tuple[str, ...] = field(default=())

    @property
    def compiled(self) -> bool:
        return self.compile is not None

    def binaries(self) -> tuple[str, ...]:
        """What must be installed: the declared binaries, else the first word of each command."""
        if self.requires:
            return self.requires
        return tuple(argv[0] for argv in (self.compile, self.run) if argv)

    def main(self, code: str) -> str:
        return self.main_of(code) if self.main_of is not None else PurePosixPath(self.source_file).stem

    def source_path(self, code: str) -> str:
        return fill(self.source_file, {"main": self.main(code)})

    def source_text(self, code: str) -> str:
        return self.source_of(code) if self.source_of is not None else code

    def compile_argv(self, call: Invocation) -> list[str] | None:
        return self._fill(self.compile, call) if self.compile is not None else None

    def run_argv(self, call: Invocation) -> list[str]:
        return self._fill(self.run, call)

    def heap_mb(self, memory_mb: int) -> int:
        return max(MIN_HEAP_MB, memory_mb - self.heap_reserve_mb)

    def _fill(self, template: tuple[str, ...], call: Invocation) -> list[str]:
        values = {
            "source": self.source_path(call.code),
            "main": self.main(call.code),
            "memory_mb": str(call.memory_mb),
            "heap_mb": str(self.heap_mb(call.memory_mb)),
            "database": database_of(call.files),
        }
        argv = [fill(part, values) for part in template]
        env = [f"{key}={fill(value, values)}" for key, value in self.env]
        return [ENV, *env, *argv] if env else argv


PLACEHOLDER = re.compile(r"\{(\w+)\}")


def fill(template: str, values: dict[str, str]) -> str:
    """`template` with its known `{placeholders}` replaced; other braces (inline scripts') stay."""
    return PLACEHOLDER.sub(lambda found: values.get(found.group(1), found.group(0)), template)


DATABASE_SUFFIXES = (".db", ".sqlite", ".sqlite3")


def database_of(files: Iterable[str]) -> str:
    """The first database file sent with the call (by name), else SQLite's in-memory database."""
    databases = sorted(path for path in files if path.endswith(DATABASE_SUFFIXES))
    return databases[0] if databases else ":memory:"


def class_named(pattern: str, default: str = "Main") -> Callable[[str], str]:
    """`main_of` for languages whose file must carry the name of a class the code declares."""
    declared = re.compile(pattern, re.MULTILINE)

    def main_of(code: str) -> str:
        found = declared.search(code)
        return found.group(1) if found else default

    return main_of


def with_prefix_unless_present(prefix: str, marker: str) -> Callable[[str], str]:
    def source_of(code: str) -> str:
        return code if marker in code else prefix + code

    return source_of
