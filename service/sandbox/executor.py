"""Turn one job into one `ExecutionResult`: workspace, compile, run, classify, clean up.

The worker calls `Sandbox.execute` for every job. The slot's workspace becomes the call's
`/workspace`; compiled languages compile in one sandboxed process and run in a second one that sees
the same workspace; the workspace is emptied afterwards whatever happened. Failures of user code are
statuses; failures of ours become `sandbox_error` with a reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from service import metrics
from service.config import Settings
from service.languages import Invocation, LanguageSpec, Registry, UnsupportedLanguage
from service.models import ExecutionResult, Job, StageResult, Status
from service.sandbox.bwrap import BwrapProfile, write_etc
from service.sandbox.compile_cache import CompileCache, compile_key
from service.sandbox.files import fetch_files, write_files
from service.sandbox.limits import Budget, CallUsage, LimitMode, Rlimit, SlotGroup, Standing, choose_limiter
from service.sandbox.process import Confinement, ProcessOutcome, run_process
from service.sandbox.workspaces import Workspaces, remove_stale
from service.sandbox.zygote import Zygote, ZygoteFailed, ZygotePool

log = logging.getLogger(__name__)
# Looked up once: a labelled child per call costs the worker more than the observation.
WARM_LAUNCH = metrics.SANDBOX_LAUNCH.labels("warm")
COLD_LAUNCH = metrics.SANDBOX_LAUNCH.labels("cold")

MB = 1024 * 1024
# A slot's cgroups, one per kind of call: each zygote's calls in that slot are born in its own
# (nothing else of ours but the slot's init is ever in it), calls started cold join the third.
COLD = "cold"
# What a zygote's start-up probe (`/bin/true`) may use.
PROBE_BUDGET = Budget(256 * MB, 5, 64, 64, MB)
COMPILE_OUTPUT_CAP = 64 * 1024
# A call runs with its slot's full CPU weight until it has used this much CPU time (a trivial Python
# call takes 3-8 ms, its slot's init included), then shares the least weight with the other long
# runners; the sweeper looks this often. CPU, not wall time: a short call slowed by a busy machine
# must not be demoted behind the loops. (Tried: also after 2 ms of user-mode CPU, which the kernel
# counts per 4 ms tick: loops left four times sooner, but ~1 trivial call in 8 with them, and at 64
# trivial calls in flight those waited seconds behind the young: p99 3 s instead of 0.8.)
FAVOURED_CPU_MS = 8.0
SWEEP_S = 0.05
# More young calls than this per core, and sharing the CPU equally makes every one of them wait (400
# loops sent at once are all young for most of a 2 s timeout, a new trivial call gets 1/400 of the
# machine): the young then weigh half as much for every millisecond of CPU they have had, so the
# least served run first and a short call that comes among them stays short. Not below: at 256 trivial
# calls in flight on two cores it doubled the p99 (2.05 s to 3.6-3.8 s), each call that needs a little
# more CPU than the others waiting behind every newer one. At most four halvings (v1 64, the ending
# weight): halved on down to the long weight (16 at 6 ms, 8 at 7), a trivial call of the hold that
# needed 6 ms crawled behind the newer ones and answered `timeout` after printing its answer.
CROWDED_PER_CORE = 128
CROWD_HALVINGS = 4
# How long before its deadline a call's group is raised to the ending weight: the slot's init, which
# shares the group, must wake on time to kill the call, not wait for its turn among hundreds of demoted
# groups (and not full weight: hundreds of loops ending together would crowd out the young calls).
PROMOTE_EARLY_S = 0.03
BWRAP_FAILED = 1
# What a program prints when the address-space limit refused it memory (Python, C++, bash/glibc):
# how memory_limit is told only in the rlimit fallback; under a cgroup the kernel's OOM count tells.
MEMORY_MARKERS = (b"MemoryError", b"std::bad_alloc", b"Cannot allocate memory", b"cannot allocate memory")


def close_all(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)


def group_name(slot: int, kind: str) -> str:
    return f"slot-{slot}-{kind}"


def write_source(path: Path, text: str) -> None:
    """The call's source file, os-level (once per call; a text file object costs more than the write)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
    try:
        data = memoryview(text.encode())
        while data:
            data = data[os.write(fd, data) :]
    finally:
        os.close(fd)


class SandboxUnavailable(RuntimeError):
    pass


def says_out_of_memory(outcome: ProcessOutcome) -> bool:
    return outcome.exit_code != 0 and any(m in outcome.stderr.data[-4096:] for m in MEMORY_MARKERS)


def classify(outcome: ProcessOutcome, usage: CallUsage, strict_output: bool) -> Status:
    # An OOM kill first: a pool whose worker the kernel killed may then hang until the deadline.
    if usage.oom_killed:
        return Status.memory_limit
    if outcome.timed_out or outcome.signal == signal.SIGXCPU:
        return Status.timeout
    # Without a cgroup watching, only the program's own words tell.
    if usage.oom_killed is None and says_out_of_memory(outcome):
        return Status.memory_limit
    if strict_output and (outcome.stdout.truncated or outcome.stderr.truncated):
        return Status.output_limit
    return Status.ok if outcome.exit_code == 0 and outcome.signal is None else Status.error


def to_stage(outcome: ProcessOutcome, usage: CallUsage, status: Status) -> StageResult:
    cpu_ms = usage.cpu_ms if usage.cpu_ms is not None else outcome.cpu_ms
    peak_kb = usage.peak_memory_kb if usage.peak_memory_kb is not None else outcome.max_rss_kb
    return StageResult(
        status=status,
        exit_code=outcome.exit_code,
        signal=outcome.signal,
        stdout=outcome.stdout.data.decode("utf-8", errors="replace"),
        stderr=outcome.stderr.data.decode("utf-8", errors="replace"),
        stdout_bytes=outcome.stdout.total,
        stderr_bytes=outcome.stderr.total,
        truncated=outcome.stdout.truncated or outcome.stderr.truncated,
        duration_ms=round(outcome.duration_ms, 3),
        cpu_ms=round(cpu_ms, 3) if cpu_ms is not None else None,
        peak_memory_kb=peak_kb,
    )


class SeccompFd:
    """A fresh read-only descriptor of the BPF file per call: bubblewrap reads it from offset 0 to EOF."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __enter__(self) -> int:
        self.fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        return self.fd

    def __exit__(self, *_: object) -> None:
        os.close(self.fd)


class Sandbox:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.languages = Registry.from_settings(settings)
        self.compile_cache = CompileCache(
            settings.workspace_root / f"worker-{os.getpid()}" / "compile-cache",
            settings.compile_cache_mb * MB,
            settings.compile_cache_entries,
        )
        self.root = settings.workspace_root / f"worker-{os.getpid()}"
        self.root.mkdir(parents=True, exist_ok=True)
        # Slot users must be able to reach their own workspace, but not list the others.
        settings.workspace_root.chmod(0o711)
        self.root.chmod(0o711)
        remove_stale(settings.workspace_root)
        write_etc(self.root / "etc")
        # Every slot's workspace, under one directory that the warm zygotes see whole.
        self.slots_dir = self.root / "slots"
        self.slots_dir.mkdir(mode=0o711, exist_ok=True)
        # A slot's groups are made on its first call of each kind.
        self.limiter = choose_limiter(settings.sandbox_limits, settings.worker_concurrency)
        log.info("sandbox limits: %s", self.limiter.describe())
        self.profile = BwrapProfile(
            settings.bwrap_path, self.root / "etc", settings.workspace_max_bytes, self.limiter.env()
        )
        self.drop_to_slot_uid = os.geteuid() == 0
        self.seccomp_bpf = self.root / "seccomp.bpf"
        self.workspaces = Workspaces(
            self.slots_dir,
            settings.worker_concurrency,
            settings.workspace_max_bytes,
            settings.workspace_max_files,
            self.slot_uid,
        )
        self.zygotes: ZygotePool | None = None
        # The group of each slot whose running stage is still favoured, for the sweeper.
        self.favoured: dict[int, SlotGroup] = {}
        # More favoured calls than this, and the least served of them go first (CROWDED_PER_CORE).
        self.crowded_above = CROWDED_PER_CORE * (os.cpu_count() or 1)
        self.sweeper: asyncio.Task[None] | None = None

    def check(self) -> None:
        """Fail at start-up, not on the first call, when the sandbox cannot be built here."""
        self._compile_seccomp_policy()
        self.workspaces.open()
        user = self.slot_uid(0)
        with SeccompFd(self.seccomp_bpf) as fd:
            argv = self.profile.command(self.root, ["/bin/true"], fd)
            probe = subprocess.run(argv, capture_output=True, timeout=30, user=user, group=user, pass_fds=(fd,))
        if probe.returncode != 0:
            raise SandboxUnavailable(f"bubblewrap cannot start a sandbox: {probe.stderr.decode(errors='replace')}")

    def _compile_seccomp_policy(self) -> None:
        # The policy is compiled by the sandbox's own interpreter, which carries libseccomp's bindings.
        script = Path(__file__).with_name("seccomp_policy.py")
        done = subprocess.run(
            [self.settings.python_path, str(script), str(self.seccomp_bpf)], capture_output=True, timeout=60
        )
        if done.returncode != 0:
            detail = done.stderr.decode(errors="replace").strip().splitlines()[-1:]
            raise SandboxUnavailable(f"cannot compile the seccomp policy (is python3-seccomp installed?): {detail}")

    async def sweep(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_S)
            self.sweep_once()

    def sweep_once(self) -> None:
        """Lower the CPU weight of calls that have used their favoured share: new calls go first. Among
        more young calls than the machine serves promptly, each young one weighs less the more CPU it
        has had; fewer, and they weigh the same again."""
        crowded = len(self.favoured) > self.crowded_above
        for slot, group in list(self.favoured.items()):
            with contextlib.suppress(OSError):
                used_ms = group.cpu_used_ms()
                if used_ms > FAVOURED_CPU_MS:
                    group.weigh(Standing.long)
                    del self.favoured[slot]
                else:
                    group.weigh(Standing.young, min(int(used_ms), CROWD_HALVINGS) if crowded else 0)

    async def start(self) -> None:
        """Start the sweeper and the warm zygotes; without them every call starts a fresh bubblewrap."""
        if self.limiter.mode != LimitMode.rlimit:
            self.sweeper = asyncio.create_task(self.sweep(), name="cpu-sweeper")
        if not self.settings.warm_interpreters:
            return
        zygotes = ZygotePool(
            self.profile,
            self.slots_dir,
            self.uid(),
            self.settings.python_path,
            self.settings.workspace_max_bytes,
            self.settings.worker_concurrency,
            self.settings.lean_zygote_slots,
            self.root / "images" if self.settings.lean_zygote_file_copies else None,
        )
        try:
            await zygotes.start(
                lambda slot, kind: self.limiter.group(group_name(slot, kind)).join_fds(),
                self.limiter.rlimits(PROBE_BUDGET),
            )
        except ZygoteFailed as exc:
            log.warning("warm zygotes unavailable (%s); every call starts a fresh sandbox", exc)
            await zygotes.stop()
            return
        self.zygotes = zygotes

    async def aclose(self) -> None:
        if self.sweeper is not None:
            self.sweeper.cancel()
        if self.zygotes is not None:
            await self.zygotes.stop()
        self.close()

    def close(self) -> None:
        self.workspaces.close()
        self.limiter.close()
        shutil.rmtree(self.root, ignore_errors=True)

    def uid(self, offset: int = 0) -> int | None:
        """The host uid sandboxes run as when the worker is root: `sandbox_uid_base` for every call slot
        (the warm zygotes serve them all), plus an offset for each session interpreter."""
        return self.settings.sandbox_uid_base + offset if self.drop_to_slot_uid else None

    def slot_uid(self, slot: int) -> int | None:
        return self.uid()

    async def execute(self, job: Job, slot: int) -> ExecutionResult:
        workspace = self.workspaces.path(slot)
        try:
            return await self._execute_in(workspace, job, slot)
        except UnsupportedLanguage as exc:
            return ExecutionResult(id=job.id, status=Status.sandbox_error, reason=str(exc))
        except Exception as exc:
            log.exception("sandbox failure", extra={"job_id": job.id})
            return ExecutionResult(id=job.id, status=Status.sandbox_error, reason=f"{type(exc).__name__}: {exc}")
        finally:
            self.workspaces.wipe(slot)

    async def _execute_in(self, workspace: Path, job: Job, slot: int) -> ExecutionResult:
        compiled = await self.prepare(workspace, job, slot)
        if compiled is not None and compiled.status != Status.ok:
            status = Status.timeout if compiled.status == Status.timeout else Status.compile_error
            return ExecutionResult(
                id=job.id,
                status=status,
                exit_code=compiled.exit_code,
                stderr=compiled.stderr,
                compile=compiled,
                reason="compilation failed",
            )
        ran = await self.run(workspace, job, slot, job.request.stdin.encode(), strict_output=job.request.strict_output)
        fetched = fetch_files(workspace, job.request.fetch_files, self.settings.max_fetch_bytes)
        files = {"files": fetched.files, "file_errors": fetched.errors}
        return ExecutionResult.from_stage(job.id, ran, compile=compiled, **files)

    async def prepare(self, workspace: Path, job: Job, slot: int) -> StageResult | None:
        """Write the call's files and source into the workspace and compile it (or take the same
        program's build from the compile cache): the compile stage, if any."""
        request, limits = job.request, job.limits
        spec: LanguageSpec = self.languages.spec(request.language)
        source = spec.source_path(request.code)
        write_files(workspace, request.files, self.slot_uid(slot))
        write_source(workspace / source, spec.source_text(request.code))
        compile_argv = spec.compile_argv(Invocation(request.code, limits.compile_memory_mb, request.files))
        if compile_argv is None:
            return None
        key = compile_key(spec.name, compile_argv, source, request.code, request.files)

        async def compile_now() -> StageResult:
            return await self._stage(
                workspace,
                slot,
                compile_argv,
                b"",
                limits.compile_timeout_s,
                self._memory_mb(spec, limits.compile_memory_mb),
                COMPILE_OUTPUT_CAP,
                strict_output=False,
            )

        return await self.compile_cache.compiled(key, workspace, self.slot_uid(slot), compile_now)

    async def run(self, workspace: Path, job: Job, slot: int, stdin: bytes, *, strict_output: bool) -> StageResult:
        """Run the prepared program once in `workspace` under the job's limits."""
        request, limits = job.request, job.limits
        spec = self.languages.spec(request.language)
        stage = await self._stage(
            workspace,
            slot,
            spec.run_argv(Invocation(request.code, limits.memory_mb, request.files)),
            stdin,
            limits.timeout_s,
            self._memory_mb(spec, limits.memory_mb),
            limits.output_bytes,
            strict_output=strict_output,
        )
        # A runtime that enforces its own heap limit (JVM, V8, PHP) fails with its words, not a kill; Go
        # says so first, then dumps every goroutine.
        said = (stage.stderr[:4096] + stage.stderr[-4096:]).encode()
        if stage.status == Status.error and any(marker in said for marker in spec.memory_markers):
            return stage.model_copy(update={"status": Status.memory_limit})
        return stage

    def _memory_mb(self, spec: LanguageSpec, memory_mb: int) -> int:
        """The stage's memory budget: under rlimits only (RLIMIT_AS) plus what the runtime reserves and never
        uses; its own memory flag (-Xmx, --max-old-space-size) then holds it to `memory_mb`."""
        if self.limiter.mode != LimitMode.rlimit:
            return memory_mb
        return memory_mb + spec.reserved_address_space_mb

    async def _stage(
        self,
        workspace: Path,
        slot: int,
        program: list[str],
        stdin: bytes,
        timeout_s: float,
        memory_mb: int,
        output_cap: int,
        *,
        strict_output: bool,
    ) -> StageResult:
        zygote = self.zygotes.pick(program, workspace, slot) if self.zygotes is not None else None
        budget = Budget(
            memory_bytes=memory_mb * MB,
            cpu_seconds=math.ceil(timeout_s) + 1,
            # A zygote's init shares its calls' group: the call's limit comes on top of it.
            max_processes=self.settings.max_processes + (1 if zygote is not None else 0),
            max_open_files=self.settings.max_open_files,
            max_file_bytes=self.settings.workspace_max_bytes,
        )
        group = self.limiter.group(group_name(slot, zygote.spec.name if zygote is not None else COLD))
        group.prepare(budget)
        # Young (favoured by the CPU scheduler) until it has used FAVOURED_CPU_MS (the sweeper then lowers
        # it), raised again just before its deadline, when the slot's init must kill it promptly.
        self.favoured[slot] = group
        promote_in = max(0.0, timeout_s - PROMOTE_EARLY_S)
        promote = asyncio.get_running_loop().call_later(promote_in, self._promote, slot, group)
        try:
            outcome = await self._launch(
                zygote, workspace, slot, program, stdin, timeout_s, output_cap, self.limiter.rlimits(budget), group
            )
        finally:
            self.favoured.pop(slot, None)
            promote.cancel()
            group.weigh(Standing.young)
        usage = group.usage()
        return to_stage(outcome, usage, classify(outcome, usage, strict_output))

    def _promote(self, slot: int, group: SlotGroup) -> None:
        """Near the call's deadline: a demoted call's group gets enough weight, for good, that its init
        kills it promptly. A call still young has its full weight (back, if a crowd had halved it), and
        is no longer swept: the ending weight is a sixteenth of it, and a short call that a busy machine
        held to its deadline would then wait behind hundreds of young calls to exit or be killed (the
        hold's calls answered `timeout` 20 s past their deadline, after printing their answer)."""
        if self.favoured.pop(slot, None) is None:
            group.weigh(Standing.ending)
        else:
            group.weigh(Standing.young)

    async def _launch(
        self,
        zygote: Zygote | None,
        workspace: Path,
        slot: int,
        program: list[str],
        stdin: bytes,
        timeout_s: float,
        output_cap: int,
        rlimits: list[Rlimit],
        group: SlotGroup,
    ) -> ProcessOutcome:
        if zygote is not None:
            started = time.perf_counter()
            try:
                outcome = await zygote.run(
                    slot,
                    group.join_fds,
                    program,
                    stdin,
                    timeout_s,
                    output_cap,
                    rlimits,
                    before_kill=lambda: self._promote(slot, group),
                )
                WARM_LAUNCH.observe(time.perf_counter() - started)
                return outcome
            except ZygoteFailed as exc:
                metrics.ZYGOTE_FAILURES.inc()
                log.warning("%s zygote of slot %d failed (%s); running the call cold", zygote.spec.name, slot, exc)
        started = time.perf_counter()
        join_fds = group.join_fds()
        try:
            with SeccompFd(self.seccomp_bpf) as fd:
                outcome = await run_process(
                    self.profile.command(workspace, program, fd),
                    stdin,
                    timeout_s,
                    output_cap,
                    Confinement(rlimits, join_fds),
                    user=self.slot_uid(slot),
                    pass_fds=(fd,),
                )
        finally:
            close_all(join_fds)
        COLD_LAUNCH.observe(time.perf_counter() - started)
        if outcome.exit_code == BWRAP_FAILED and outcome.stderr.data.startswith(b"bwrap: "):
            # bubblewrap could not build the sandbox (the program never ran): our failure, not the call's.
            raise SandboxUnavailable(outcome.stderr.data.decode(errors="replace").strip())
        return outcome
