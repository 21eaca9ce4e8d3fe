"""The `sandpit` command line against a real server."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from service.stack import LocalStack


def sandpit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "service.cli", *args], capture_output=True, text=True, timeout=120)


def test_run_snippet_prints_stdout_and_status(stack: LocalStack) -> None:
    done = sandpit("run", "--url", stack.url, "-c", "print(6*7)")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "42\n"
    assert "[ok exit=0" in done.stderr


def test_run_file_picks_language_from_suffix(stack: LocalStack, tmp_path: Path) -> None:
    source = tmp_path / "hello.cpp"
    source.write_text('#include <cstdio>\nint main(){puts("from c++");}')
    done = sandpit("run", "--url", stack.url, "--json", str(source))
    assert done.returncode == 0, done.stderr
    assert '"stdout": "from c++\\n"' in done.stdout


def test_failing_program_gives_nonzero_exit(stack: LocalStack) -> None:
    done = sandpit("run", "--url", stack.url, "-l", "bash", "-c", "exit 4")
    assert done.returncode == 1
    assert "[error exit=4" in done.stderr


def test_bad_request_reports_the_server_message(stack: LocalStack) -> None:
    done = sandpit("run", "--url", stack.url, "--timeout", "100000", "-c", "print(1)")
    assert done.returncode == 2
    assert "timeout_s" in done.stderr
