"""What the sandbox offers, found by running it: each language's version and Python's packages.

At start a worker looks up which languages of the registry it runs (enabled by `SANDPIT_LANGUAGES`
and installed), runs each one's toolchain version command and Python's package probe (the binaries its
sandboxes run, so the answer holds where the gateway has no toolchains) and writes the result to Redis,
where `GET /v1/languages` reads it. A probe that fails, or hangs past its timeout, leaves that version
unknown with a warning; it never stops the worker. Each worker rewrites the report under a TTL while it
runs, so the report disappears once no worker is left to vouch for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

from service.config import Settings
from service.languages import listing, registry
from service.models import Language, LanguageRuntime, Runtimes
from service.queue.errors import REDIS_DOWN
from service.queue.redis_queue import RedisQueue
from service.worker.loop import RETRY_DELAY_S

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 20.0
REPUBLISH_INTERVAL_S = 600
RUNTIMES_TTL_S = 3 * REPUBLISH_INTERVAL_S
PYTHON_PACKAGES_PROBE = Path(__file__).with_name("python_packages.py")


@dataclass(frozen=True)
class RuntimeProbe:
    # argv whose first line of output names the version.
    version: list[str]
    # argv that prints a JSON object {distribution: version}; None for languages without packages.
    packages: list[str] | None = None


def runtime_probes(settings: Settings) -> dict[Language, RuntimeProbe]:
    """The version probe of every language this worker runs (python's with its package probe)."""
    languages = registry(settings)
    probes = {language: RuntimeProbe(list(languages.specs[language].version)) for language in languages.available()}
    # -I -B as when the sandbox runs a program: the same sys.path, no user site, no .pyc written.
    probes[Language.python] = RuntimeProbe(
        [settings.python_path, "--version"], packages=[settings.python_path, "-I", "-B", str(PYTHON_PACKAGES_PROBE)]
    )
    return probes


async def report_runtimes(settings: Settings, queue: RedisQueue, worker_id: str, sandbox_limits: str) -> None:
    """Probe once, then keep the report (with how this worker limits calls) in Redis while it runs."""
    probes = runtime_probes(settings)
    probed = await probe_runtimes(probes, worker_id)
    runtimes = with_registry(probed, settings).model_copy(update={"sandbox_limits": sandbox_limits})
    while True:
        try:
            await queue.publish_runtimes(runtimes, RUNTIMES_TTL_S)
        except REDIS_DOWN:
            await asyncio.sleep(RETRY_DELAY_S)
            continue
        await asyncio.sleep(REPUBLISH_INTERVAL_S)


async def probe_runtimes(
    probes: dict[Language, RuntimeProbe], worker_id: str, timeout_s: float = PROBE_TIMEOUT_S
) -> Runtimes:
    languages = await asyncio.gather(*(probe_runtime(name, probe, timeout_s) for name, probe in probes.items()))
    return Runtimes(reported=True, worker=worker_id, probed_at=time.time(), languages=list(languages))


def with_registry(probed: Runtimes, settings: Settings) -> Runtimes:
    """Every language of the registry with its names and commands; the probed ones available, with versions."""
    found = {runtime.name: runtime for runtime in probed.languages}
    languages = [
        entry.model_copy(update=found[entry.name].model_dump(include={"version", "packages"}))
        if entry.name in found
        else entry
        for entry in listing(registry(settings), found)
    ]
    return probed.model_copy(update={"languages": languages})


async def probe_runtime(name: Language, probe: RuntimeProbe, timeout_s: float) -> LanguageRuntime:
    version = first_line(await run_probe(probe.version, timeout_s))
    packages = parse_packages(await run_probe(probe.packages, timeout_s)) if probe.packages else {}
    return LanguageRuntime(name=name, version=version, packages=packages)


async def run_probe(argv: list[str], timeout_s: float) -> str | None:
    """What the command printed (stdout, else stderr: some toolchains print their version there), or None
    with a warning if it cannot start, exits non-zero or outlasts the timeout."""
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except OSError as exc:
        log.warning("runtime probe %s could not start: %s", argv, exc)
        return None
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout_s)
    except TimeoutError:
        log.warning("runtime probe %s did not finish within %g s", argv, timeout_s)
        return None
    finally:
        # Timed out, or the worker is stopping: leave no probe behind.
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    if process.returncode != 0:
        log.warning("runtime probe %s exited %s: %s", argv, process.returncode, stderr.decode(errors="replace")[-500:])
        return None
    return (stdout or stderr).decode(errors="replace")


def first_line(output: str | None) -> str | None:
    lines = [line.strip() for line in (output or "").splitlines() if line.strip()]
    return lines[0] if lines else None


def parse_packages(output: str | None) -> dict[str, str]:
    """The package probe's JSON object of name -> version; anything else is logged and yields none."""
    if output is None:
        return {}
    try:
        packages = json.loads(output)
    except ValueError:
        log.warning("python package probe printed no JSON: %r", output[:200])
        return {}
    if not isinstance(packages, dict):
        log.warning("python package probe printed %s, not an object", type(packages).__name__)
        return {}
    return {str(name): str(version) for name, version in packages.items()}
