"""docs/languages.md, written from the registry: `python -m service.languages.docs > docs/languages.md`.

The table is the registry itself (names, files, commands as filled in for a 512 MB call) beside the Debian
packages the worker image pins for each language, so the page cannot disagree with what runs.
A test fails when the committed page is stale.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from service.config import Settings
from service.languages import LISTED_MEMORY_MB, Invocation, LanguageSpec, language_specs

PACKAGE_LISTS = Path(__file__).parents[2] / "deploy" / "local" / "languages"

HEADER = """# Languages

<!-- Written by `python -m service.languages.docs > docs/languages.md` from service/languages/definitions.py
     and deploy/local/languages/*.txt; do not edit by hand. -->

Every language is one definition in `service/languages/definitions.py`: the file the code is written to,
the compile and run commands, the runtime's memory flags, the names `/run_code` accepts, the version
probe. The worker, the judge, `/run_code`, `GET /v1/languages` and this page all read it. The name in
the first column is what `/v1/execute`, `/v1/judge` and `/run_code` take; `/run_code` also takes the
aliases (SandboxFusion's names among them).

Commands run inside the sandbox in `/workspace`, shown as filled in for a call with `memory_mb: 512`:
`-Xmx`, `--max-old-space-size`, `GOMEMLIMIT`, Mono's `max-heap-size` and PHP's `memory_limit` follow the
call's `memory_mb` (less a reserve for the runtime itself), so a runtime's heap fits the cgroup limit
it runs under instead of sizing itself from the host's memory, which the sandbox cannot see. A runtime
that stops at its own heap limit (`java.lang.OutOfMemoryError`, V8's "heap out of memory") is
`memory_limit`, like a kill by the cgroup. Where a worker has no cgroup (the `rlimit` fallback), the JVM,
Go, Node and Mono get extra address space beyond `memory_mb` (they reserve far more than they use) and
their own flag holds them to it. Compile commands have their own limits (`SANDPIT_COMPILE_TIMEOUT_S`,
`SANDPIT_COMPILE_MEMORY_MB`; `{heap}` below is filled from the latter).

**Compile once.** A worker keeps each successful build (and each compiler error) under a hash of the
language, the compile command, the source and every file sent with the call, in a bounded cache
(`SANDPIT_COMPILE_CACHE_MB`, `SANDPIT_COMPILE_CACHE_ENTRIES`, least recently used out). A judge run or a
GRPO group sending the same program compiles it once per worker; calls that arrive while it compiles
wait for that build. A cached compile stage reports `duration_ms: 0`.

**Choosing languages.** `SANDPIT_LANGUAGES=python,cpp make up` installs only those toolchains (and
python and bash, which the service's own tools need) and has the workers offer only those; the
worker image takes the same list as a build argument (`--build-arg SANDPIT_LANGUAGES=...`, default
`all`). A language that is not enabled, or whose toolchain a worker lacks, answers `sandbox_error` with
the reason `unsupported language '<name>': ...` (`/run_code`: `SandboxError`); an unknown name is a 422
(`/run_code`: `SandboxError`, "unsupported language"). `GET /v1/languages` says which languages the
workers run (`available`) and the version each toolchain reports.

**Adding a language**: a `LanguageSpec` in `definitions.py`, its member in `service.models.Language`,
its Debian packages in `deploy/local/languages/<name>.txt`, and its probe program in
`tests/languages/programs.py`; then regenerate this page.

| language | aliases | source file | compile | run | Debian packages (image pins) | notes |
| --- | --- | --- | --- | --- | --- | --- |
"""


def packages_of(name: str) -> list[str]:
    path = PACKAGE_LISTS / f"{name}.txt"
    if not path.exists():
        return []
    lines = (line.split("#", 1)[0].strip() for line in path.read_text().splitlines())
    return [line for line in lines if line]


def shown(argv: list[str] | None) -> str:
    if argv is None:
        return ""
    words = [word if len(word) <= 60 else "<script>" for word in argv]
    # The compile command's heap is the compile limit's; show it as a placeholder, not a number.
    return "`" + re.sub(r"\b(Xmx|max-heap-size=)\d+", r"\1{heap}", " ".join(words)) + "`"


def row(spec: LanguageSpec) -> str:
    call = Invocation("", LISTED_MEMORY_MB)
    compile_argv = spec.compile_argv(call)
    cells = [
        f"`{spec.name}` ({spec.title})",
        ", ".join(f"`{alias}`" for alias in spec.aliases),
        f"`{spec.source_file}`",
        shown(compile_argv),
        "`" + " ".join(spec.run_argv(call)) + "`",
        ", ".join(f"`{package}`" for package in packages_of(spec.name)) or "base list",
        spec.notes,
    ]
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


def render(specs: Iterable[LanguageSpec]) -> str:
    return HEADER + "\n".join(row(spec) for spec in specs) + "\n"


if __name__ == "__main__":
    print(render(language_specs(Settings.model_construct())), end="")
