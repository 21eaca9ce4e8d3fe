"""Every setting Sandpit reads, in one typed object.

`Settings` is built once at start-up (from `SANDPIT_*` environment variables, plus the conventional
`REDIS_URL` and `PORT`) and passed down to the gateway, the worker and the sandbox. Nothing deeper in the
code reads the environment.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# Shard numbers take the first hex digits of a job id (service/queue/keys.py).
SHARD_DIGITS = 4
MAX_SHARDS = 16**SHARD_DIGITS
# redis-py's own default socket timeout, made explicit (`Settings.redis_socket_timeout_s`).
REDIS_SOCKET_TIMEOUT_S = 5.0

# Slots per core, and the memory budgeted per slot (a running call's own processes, its namespace's
# init and the worker's bookkeeping; what the call allocates is bounded by its own memory limit).
SLOTS_PER_CORE = 256
MB_PER_SLOT = 32
MAX_SLOTS = 1024


def memory_mb() -> int:
    """This machine's memory, or the container's limit when it is lower (cgroup v2, then v1)."""
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        with contextlib.suppress(OSError, ValueError):
            total = min(total, int(Path(path).read_text()))
    return total // (1024 * 1024)


def default_concurrency() -> int:
    cores = os.cpu_count() or 1
    return max(cores, min(cores * SLOTS_PER_CORE, memory_mb() // MB_PER_SLOT, MAX_SLOTS))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SANDPIT_", extra="ignore")

    redis_url: str = Field(
        default="redis://127.0.0.1:6379/0",
        validation_alias=AliasChoices("SANDPIT_REDIS_URL", "REDIS_URL"),
    )
    key_prefix: str = "sandpit"
    # A Redis Cluster: `redis_url` names any one of its nodes. docs/architecture.md, "Shards".
    redis_cluster: bool = False
    # The queue is split into this many shards, each one hash slot (so one cluster primary).
    queue_shards: int = Field(default=1, ge=1, le=MAX_SHARDS)
    # How long a Redis command (writing it or waiting for its reply) may take before the connection is
    # dropped as dead (redis-py's own default). An enqueue cut off this way may have reached Redis: the
    # gateway withdraws its jobs before it answers 503 (docs/reliability.md, "What each fault does").
    redis_socket_timeout_s: float = Field(default=REDIS_SOCKET_TIMEOUT_S, gt=0)

    host: str = "127.0.0.1"
    port: int = Field(default=8080, validation_alias=AliasChoices("SANDPIT_PORT", "PORT"))
    max_body_bytes: int = 2 * 1024 * 1024

    # API keys, hashed (sha256 hex): a JSON file of tenants, and/or "name:sha256,name:sha256" inline.
    # With neither, the API is open (meant for loopback and trusted networks) as tenant "anonymous".
    api_keys_file: Path | None = None
    api_keys: str = ""
    # Backpressure: 429 once the stream holds this many unfinished jobs (0: no limit).
    max_queue_depth: int = 100_000
    # Per-tenant defaults (a tenant in the keys file may set its own): unfinished jobs it may have
    # at once, and calls per second per gateway (0: no limit).
    tenant_max_in_flight: int = 0
    tenant_rate_per_s: float = 0.0

    # Limits a caller may ask for, and what they get when they ask for nothing.
    default_timeout_s: float = 10.0
    max_timeout_s: float = 60.0
    default_memory_mb: int = 512
    max_memory_mb: int = 4096
    max_output_bytes: int = 1024 * 1024
    max_code_bytes: int = 512 * 1024
    max_stdin_bytes: int = 1024 * 1024

    # How long a call may wait in the queue before its caller has given up on it.
    queue_wait_s: float = 60.0
    # The same for `POST /v1/jobs`: nobody holds a connection open, so it may wait longer.
    job_queue_wait_s: float = 600.0
    result_ttl_s: int = 3600
    max_long_poll_s: float = 60.0

    # Files sent in with a call (decoded) and fetched back after it, per call.
    max_files: int = 256
    max_files_bytes: int = 8 * 1024 * 1024
    max_fetch_bytes: int = 8 * 1024 * 1024
    # A judge request runs at most this long in total: test cases times the per-case time limit.
    max_judge_s: float = 600.0
    # The tool registry (JSON); the default is service/tools/tools.json.
    tools_path: Path | None = None
    # Tool packs loaded after it: directories separated by ":", each with a tools.json (docs/tools.md).
    tool_packs: str = ""

    # Sessions: persistent interpreters, each pinned to one worker, ended after this long unused.
    session_idle_s: float = 300.0
    max_sessions_per_worker: int = 16
    # Session interpreters run as sandbox_uid_base + this offset + their index on the worker.
    session_uid_offset: int = 1000
    # Branches one `POST /v1/sessions/{id}/fork` may make; sessions (branches included) a tenant may hold
    # at once (0: no limit).
    max_session_forks: int = 8
    tenant_max_sessions: int = 0

    # Calls one worker runs at once (its sandbox slots): far above its cores, since a call that loops or
    # sleeps holds a slot, not a core (calls share the CPU fairly); bounded by memory. docs/reliability.md.
    worker_concurrency: int = Field(default_factory=lambda: default_concurrency())
    worker_batch: int = 64
    heartbeat_interval_s: float = 2.0
    heartbeat_ttl_s: float = 10.0
    # A job whose worker stopped refreshing it for this long is handed to another worker.
    reclaim_idle_s: float = 15.0
    max_attempts: int = 3

    bwrap_path: str = "bwrap"
    # Run calls from pre-started zygotes (warm interpreters) instead of a fresh bubblewrap each time.
    warm_interpreters: bool = True
    # Slots served by one lean zygote (the warm interpreter of calls that need no numpy or sympy): a worker
    # starts one per this many slots, each on its own, so that hundreds of calls starting and ending at
    # once do not all wait on the kernel's locks of one zygote's memory (docs/reliability.md, issue 14).
    lean_zygote_slots: int = Field(default=32, ge=1)
    # Give each lean zygote its own copy of the interpreter and the libraries it maps (`images.py`), so the
    # kernel's per-file lock that every fork and exit takes is one per zygote. On by default since the
    # hold of 50,000 calls: with every slot busy, ~500 processes forking and exiting at once queued on
    # that one lock past their deadlines (1, 32 and 125 calls answered `timeout` after printing their
    # answer in three runs without the copies, none with them). It costs ~11 MB of page cache per lean
    # zygote and ~0.1 ms more CPU per trivial call (docs/benchmarks.md, "copies").
    lean_zygote_file_copies: bool = True
    python_path: str = "/usr/bin/python3"
    cxx_path: str = "/usr/bin/g++"
    bash_path: str = "/bin/bash"
    compile_timeout_s: float = 30.0
    compile_memory_mb: int = 2048
    # Languages offered: "all", or names such as "python,cpp,java" (python and bash always); the rest
    # answer `unsupported language`. `make up` installs only these toolchains too.
    languages: str = "all"
    # Compiled programs kept per worker (content-addressed), so identical code compiles once.
    compile_cache_mb: int = 256
    compile_cache_entries: int = 1024
    workspace_root: Path = Path("/tmp/sandpit-workspaces")
    workspace_max_bytes: int = 64 * 1024 * 1024
    workspace_max_files: int = 4096
    # Processes and threads of one call (cgroup pids.max; RLIMIT_NPROC of the slot's uid in the fallback).
    max_processes: int = 256
    # How calls' memory and processes are limited: a cgroup (v2 or v1) when the host gives one, else
    # rlimits; "cgroup" refuses to start without one, "rlimit" never tries.
    sandbox_limits: Literal["auto", "cgroup", "rlimit"] = "auto"
    max_open_files: int = 256
    # When the worker runs as root, each sandbox slot runs as its own unprivileged uid, so that
    # per-user kernel limits (RLIMIT_NPROC) of one call cannot starve another.
    sandbox_uid_base: int = 60000

    # Logs: one JSON object per line (for collectors) or plain text; per-job lines are at `debug`.
    log_format: Literal["json", "text"] = "json"
    log_level: str = "INFO"
    # Each worker serves Prometheus metrics on this port (0: off). `sandpit up` gives its i-th worker
    # port + i, so several local workers never collide.
    worker_metrics_port: int = 0
    worker_metrics_host: str = "127.0.0.1"
    # How often the gateway samples queue depth and age and worker slots from Redis for /metrics.
    metrics_sample_interval_s: float = 5.0


def load_settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]
