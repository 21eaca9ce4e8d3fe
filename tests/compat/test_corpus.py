"""The compatibility corpus: each program in `programs/` gives through the service exactly what it gives
run bare by hand: the same stdout, the same stderr (tracebacks included), the same exit code or signal.

A program's stdin is its sibling `NAME.stdin`, if there is one, else empty. The bare reference is
`python3 main.py` in a fresh empty temporary directory with the sandbox's environment less what only the
sandbox has (see `tests/compat/runs.py`: `HOME` is that directory, `PYTHONUNBUFFERED` unset); the
directory's path, the one thing normalised, reads `/workspace`. The service runs the program as any
caller would: `POST /v1/execute`, language python, with time and memory to spare.
"""

from __future__ import annotations

import httpx
import pytest

from tests.calls import execute
from tests.compat.runs import Run, bare_program_run, program_names, program_source, program_stdin

TIMEOUT_S = 20
MEMORY_MB = 1024


@pytest.mark.parametrize("name", program_names())
def test_program_behaves_as_bare_python(api: httpx.Client, name: str) -> None:
    expected = bare_program_run(name)
    result = execute(
        api,
        language="python",
        code=program_source(name),
        stdin=program_stdin(name),
        timeout_s=TIMEOUT_S,
        memory_mb=MEMORY_MB,
    )
    served = Run(
        stdout=str(result["stdout"]),
        stderr=str(result["stderr"]),
        exit_code=result["exit_code"],  # type: ignore[arg-type]
        signal=result["signal"],  # type: ignore[arg-type]
    )
    assert served == expected, f"status {result['status']}: {result.get('reason')}"
