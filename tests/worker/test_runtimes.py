"""The worker's runtime probe: version lines, package JSON, and probes that fail without stopping anything."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from service.models import Language
from service.worker.runtimes import (
    PYTHON_PACKAGES_PROBE,
    RuntimeProbe,
    first_line,
    parse_packages,
    probe_runtimes,
    run_probe,
)

BASH_VERSION_OUTPUT = """
GNU bash, version 5.2.15(1)-release (x86_64-pc-linux-gnu)
Copyright (C) 2022 Free Software Foundation, Inc.
"""


def test_the_version_is_the_first_non_empty_line() -> None:
    assert first_line(BASH_VERSION_OUTPUT) == "GNU bash, version 5.2.15(1)-release (x86_64-pc-linux-gnu)"
    assert first_line("") is None
    assert first_line(None) is None


def test_packages_are_a_json_object_of_versions() -> None:
    assert parse_packages('{"numpy": "1.24.2", "regex": "2022.10.31"}') == {"numpy": "1.24.2", "regex": "2022.10.31"}


@pytest.mark.parametrize("output", [None, "", "Traceback (most recent call last):", "[1, 2]"])
def test_anything_but_a_json_object_yields_no_packages(output: str | None) -> None:
    assert parse_packages(output) == {}


async def test_a_missing_binary_yields_none_and_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    assert await run_probe(["/nonexistent/g++", "--version"], timeout_s=5) is None
    assert "could not start" in caplog.text


async def test_a_failing_command_yields_none(caplog: pytest.LogCaptureFixture) -> None:
    assert await run_probe([sys.executable, "-c", "import sys; sys.exit('broken')"], timeout_s=5) is None
    assert "exited 1" in caplog.text and "broken" in caplog.text


async def test_a_hanging_probe_is_killed_at_its_timeout(caplog: pytest.LogCaptureFixture) -> None:
    started = time.monotonic()
    assert await run_probe(["sleep", "30"], timeout_s=0.2) is None
    assert time.monotonic() - started < 5
    assert "did not finish" in caplog.text


async def test_a_version_printed_on_stderr_is_read_there() -> None:
    output = await run_probe([sys.executable, "-c", "import sys; print('javac 17.0.9', file=sys.stderr)"], timeout_s=5)
    assert first_line(output) == "javac 17.0.9"


async def test_a_broken_toolchain_leaves_its_version_unknown_and_the_others_probed() -> None:
    probes = {
        Language.python: RuntimeProbe(["/nonexistent/python3", "--version"], packages=["/nonexistent/python3"]),
        Language.bash: RuntimeProbe(["bash", "--version"]),
    }
    runtimes = await probe_runtimes(probes, "worker-1", timeout_s=5)
    assert runtimes.reported and runtimes.worker == "worker-1"
    python, bash = runtimes.languages
    assert (python.name, python.version, python.packages) == (Language.python, None, {})
    assert bash.name == Language.bash and str(bash.version).startswith("GNU bash")


def test_the_package_probe_reads_real_versions_where_debian_wrote_placeholders() -> None:
    done = subprocess.run(
        ["/usr/bin/python3", "-I", "-B", str(PYTHON_PACKAGES_PROBE)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    packages = json.loads(done.stdout)
    assert packages["numpy"].startswith("1.")
    # Debian's python3-mpmath metadata says 0.0.0; mpmath.__version__ knows better.
    assert packages["mpmath"] != "0.0.0"
