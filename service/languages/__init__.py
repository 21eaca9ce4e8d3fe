"""How each language turns source text into a running program.

A `LanguageSpec` names the file the source is written to, the optional compile command and the run
command, all as argv lists seen from inside the sandbox (the workspace is `/workspace`). The worker's
sandbox executor is the only user; adding a language means adding one entry to `language_specs`.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.config import Settings
from service.models import Language

WORKSPACE = "/workspace"


@dataclass(frozen=True)
class LanguageSpec:
    source_file: str
    run: list[str]
    compile: list[str] | None = None


def language_specs(settings: Settings) -> dict[Language, LanguageSpec]:
    binary = f"{WORKSPACE}/main"
    return {
        # As `python3 main.py` (the sandbox's environment is ours alone); -B: /usr is read-only, no .pyc.
        Language.python: LanguageSpec("main.py", [settings.python_path, "-B", "main.py"]),
        Language.bash: LanguageSpec("main.sh", [settings.bash_path, "main.sh"]),
        Language.cpp: LanguageSpec(
            "main.cpp",
            run=[binary],
            compile=[settings.cxx_path, "-std=c++17", "-O2", "-pipe", "-o", binary, "main.cpp"],
        ),
    }
