"""The messages between the worker and its warm zygotes, typed once for both ends.

Standard library only: the zygote (`zygote_server.py`) imports this module inside the sandbox's own
interpreter. Each message is one JSON datagram on a SOCK_SEQPACKET socket. A `CallRequest` carries,
as passed descriptors, the call's stdin, stdout and stderr.
"""

from __future__ import annotations

import json
from typing import TypedDict

STDIO_FDS = 3
MAX_MESSAGE = 65536


class Hello(TypedDict):
    """The zygote's first message, once its modules are imported and it can fork calls."""

    ready: bool
    modules: list[str]


class CallRequest(TypedDict):
    id: int
    argv: list[str]
    timeout_s: float
    # (resource, soft, hard) for `resource.setrlimit`, as the worker's limiter chose them.
    rlimits: list[tuple[int, int, int]]
    niceness: int
    # Size of the call's own /dev/shm (a fresh tmpfs, charged to the call's memory under a cgroup).
    shm_bytes: int


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
    # From wait4 of the call's first process (itself and the children it reaped).
    cpu_ms: float
    max_rss_kb: int


def encode(message: Hello | CallRequest | CallReport) -> bytes:
    return json.dumps(message).encode()


def decode_request(raw: bytes) -> CallRequest:
    request: CallRequest = json.loads(raw)
    return request


def decode_report(raw: bytes) -> CallReport:
    report: CallReport = json.loads(raw)
    return report
