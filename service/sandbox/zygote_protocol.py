"""The messages between the worker and its warm zygotes, typed once for both ends.

Standard library only: the zygote (`zygote_server.py`) imports this module inside the sandbox's own
interpreter. Each message is one JSON datagram on a SOCK_SEQPACKET socket. A `CallRequest` carries,
as passed descriptors, the call's stdin, stdout and stderr, and after them, when its `join` is set,
the slot's cgroup descriptors (the zygote keeps them for the slot's namespaces to come). Between the
zygote and its own processes (the slot's init and the call's process), where the same interpreter is
at both ends, a request and a report travel as `marshal` instead (`pack`, `unpack_call`,
`unpack_report`).
"""

from __future__ import annotations

import json
import marshal
from typing import Any, TypedDict, cast

STDIO_FDS = 3
# The stdio pipes and, for a slot's first call of the zygote, its cgroup's cgroup.procs (one per v1
# hierarchy).
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
    # Size of the slot's /dev/shm for this call (a tmpfs emptied after each call; its pages are charged
    # to the call's memory under a cgroup).
    shm_bytes: int
    # The descriptors after the pipes are the slot's cgroup's (none without a cgroup): every namespace
    # the zygote makes for the slot from now on joins it. Sent once per slot and zygote.
    join: bool


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


def decode_report(raw: bytes) -> CallReport:
    report: CallReport = json.loads(raw)
    return report


def pack(message: CallRequest | CallReport) -> bytes:
    """For the zygote's own processes only. One C call each way, where json's Python layers write to
    pages of the image that the waiting call's process shares: ~45 more copy-on-write faults per
    call in the slot's init, ~20 in the call's. (marshal trusts its input: no byte of it comes from
    a call.)"""
    return marshal.dumps(cast("dict[str, Any]", message))


def unpack_call(raw: bytes) -> CallRequest:
    request: CallRequest = marshal.loads(raw)
    return request


def unpack_report(raw: bytes) -> CallReport:
    report: CallReport = marshal.loads(raw)
    return report
