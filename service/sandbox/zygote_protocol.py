"""The messages between the worker and its warm zygotes, typed once for both ends.

Standard library only: the zygote (`zygote_server.py`) imports this module inside the sandbox's own
interpreter. Each message is one JSON datagram on a SOCK_SEQPACKET socket. A `CallRequest` carries,
as passed descriptors, the call's stdin, stdout and stderr.
"""

from __future__ import annotations

import json
from typing import TypedDict

STDIO_FDS = 3
# The stdio pipes and, for a slot's first call, its cgroup's cgroup.procs (one per v1 hierarchy).
MAX_FDS = STDIO_FDS + 8
MAX_MESSAGE = 65536


class Hello(TypedDict):
    """The zygote's first message, once its modules are imported and it can fork calls."""

    ready: bool
    modules: list[str]


class CallRequest(TypedDict):
    id: int
    # The worker's sandbox slot: its workspace and its cgroup. A slot runs one call at a time.
    slot: int
    argv: list[str]
    timeout_s: float
    # (resource, soft, hard) for `resource.setrlimit`, as the worker's limiter chose them.
    rlimits: list[tuple[int, int, int]]
    niceness: int
    # Size of the call's own /dev/shm (a fresh tmpfs, charged to the call's memory under a cgroup).
    shm_bytes: int


class Cancel(TypedDict):
    """Kill the slot's call `id` if it still runs; answered `cancelled` once its processes are gone."""

    id: int
    slot: int
    cancel: bool


class CallReport(TypedDict, total=False):
    """How the call ended, from the init of its pid namespace (never from the call itself)."""

    id: int
    exit_code: int
    signal: int
    timed_out: bool
    duration_ms: float
    # The call's first process exited before it started the program: our failure, not the call's.
    setup_failed: bool
    # The zygote could not run the call at all.
    error: str
    # The answer to a `Cancel`.
    cancelled: bool
    # From wait4 of the call's first process (itself and the children it reaped).
    cpu_ms: float
    max_rss_kb: int


def encode(message: Hello | CallRequest | Cancel | CallReport) -> bytes:
    return json.dumps(message).encode()


def decode_request(raw: bytes) -> CallRequest | Cancel:
    request: CallRequest | Cancel = json.loads(raw)
    return request


def decode_call(raw: bytes) -> CallRequest:
    """A request the zygote has already told from a `Cancel`."""
    request: CallRequest = json.loads(raw)
    return request


def decode_report(raw: bytes) -> CallReport:
    report: CallReport = json.loads(raw)
    return report
