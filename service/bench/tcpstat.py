"""The kernel's side of many connections: listen-queue depth, resets and drops, open descriptors.

When a client sees its connection reset, these say where it happened: an accept queue that
overflowed (`ListenOverflows`, `ListenDrops`; with `tcp_abort_on_overflow` off the handshake's last
ACK is dropped, and a connection the server never accepts before its SYN-ACK retries run out is
answered with a reset), a socket closed with unread data (`TCPAbortOnData`), or a process at its
descriptor limit. The counters are those of the network namespace, so other traffic on the host
adds to them; the listen queue and the descriptors are the gateway's own.
"""

from __future__ import annotations

from pathlib import Path

PROC = Path("/proc")
LISTEN = "0A"
COUNTERS = (
    "TcpExt:ListenOverflows",
    "TcpExt:ListenDrops",
    "TcpExt:TCPReqQFullDrop",
    "TcpExt:SyncookiesSent",
    "TcpExt:SyncookiesFailed",
    "TcpExt:TCPAbortOnData",
    "TcpExt:TCPAbortOnClose",
    "TcpExt:TCPAbortOnTimeout",
    "TcpExt:TCPBacklogDrop",
    "Tcp:AttemptFails",
    "Tcp:EstabResets",
    "Tcp:OutRsts",
)
SYSCTLS = (
    "net/core/somaxconn",
    "net/ipv4/tcp_max_syn_backlog",
    "net/ipv4/tcp_syncookies",
    "net/ipv4/tcp_abort_on_overflow",
    "net/ipv4/tcp_synack_retries",
    "net/ipv4/ip_local_port_range",
)


def _counter_table(text: str) -> dict[str, int]:
    """`/proc/net/netstat` and `/proc/net/snmp`: pairs of lines, names then values, under one prefix."""
    table: dict[str, int] = {}
    lines = text.splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        prefix, _, name_list = names.partition(": ")
        for name, value in zip(name_list.split(), values.partition(": ")[2].split(), strict=False):
            if value.lstrip("-").isdigit():
                table[f"{prefix}:{name}"] = int(value)
    return table


def tcp_counters() -> dict[str, int]:
    table: dict[str, int] = {}
    for name in ("netstat", "snmp"):
        table.update(_counter_table((PROC / "net" / name).read_text()))
    return {name: table.get(name, 0) for name in COUNTERS}


def counters_spent(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {name: after[name] - before.get(name, 0) for name in after}


def tcp_settings() -> dict[str, str]:
    return {path.rsplit("/", 1)[1]: (PROC / "sys" / path).read_text().strip() for path in SYSCTLS}


def open_files(pid: int) -> int:
    try:
        return sum(1 for _ in (PROC / str(pid) / "fd").iterdir())
    except (FileNotFoundError, ProcessLookupError):
        return 0


def open_files_limit(pid: int) -> int | None:
    try:
        limits = (PROC / str(pid) / "limits").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    for line in limits.splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    return None


def accept_queue(port: int) -> int | None:
    """Connections waiting to be accepted on the socket listening on `port` (its length is not shown).

    The kernel lists listening sockets first in `/proc/net/tcp`, so the read stops at the first other
    socket instead of walking the tens of thousands of connections that follow.
    """
    wanted = f"{port:04X}"
    with (PROC / "net" / "tcp").open() as table:
        next(table)
        for line in table:
            fields = line.split()
            if fields[3] != LISTEN:
                break
            if fields[1].rpartition(":")[2] == wanted:
                # tx_queue:rx_queue; a listener's rx_queue is its accept queue.
                return int(fields[4].partition(":")[2], 16)
    return None
