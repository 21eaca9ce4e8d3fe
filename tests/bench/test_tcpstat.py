"""The kernel-side readings of the hold scenario, against real sockets and this host's /proc."""

from __future__ import annotations

import os
import socket

from service.bench.procstat import component_of, cpu_ms_per_call
from service.bench.tcpstat import COUNTERS, accept_queue, open_files, open_files_limit, tcp_counters


def test_accept_queue_counts_connections_not_yet_accepted() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        port = listener.getsockname()[1]
        assert accept_queue(port) == 0
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(3)]
        try:
            assert accept_queue(port) == 3
            accepted, _ = listener.accept()
            accepted.close()
            assert accept_queue(port) == 2
        finally:
            for client in clients:
                client.close()


def test_accept_queue_of_a_port_nobody_listens_on_is_none() -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    assert accept_queue(port) is None


def test_tcp_counters_read_every_named_counter_and_only_grow() -> None:
    before = tcp_counters()
    assert set(before) == set(COUNTERS)
    # A refused connection: a reset sent, an attempt failed.
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    with socket.socket() as client:
        assert client.connect_ex(("127.0.0.1", port)) != 0
    after = tcp_counters()
    assert after["Tcp:AttemptFails"] > before["Tcp:AttemptFails"]
    assert after["Tcp:OutRsts"] > before["Tcp:OutRsts"]
    assert all(after[name] >= before[name] for name in COUNTERS)


def test_open_files_follow_the_descriptors_this_process_opens() -> None:
    before = open_files(os.getpid())
    with socket.socket(), socket.socket():
        assert open_files(os.getpid()) == before + 2
    limit = open_files_limit(os.getpid())
    assert limit is not None and limit >= before


def test_cpu_per_call_is_summed_by_role() -> None:
    spent = {"gateway": 1.0, "redis": 0.5, "worker-1": 2.0, "worker-2": 1.0, "worker-1/zygotes": 4.0, "sandboxes": 0.5}
    assert [component_of(name) for name in spent] == ["gateway", "redis", "worker", "worker", "zygotes", "sandboxes"]
    per_call = cpu_ms_per_call(spent, 1000)
    assert per_call == {
        "gateway": 1.0,
        "redis": 0.5,
        "sandboxes": 0.5,
        "worker": 3.0,
        "zygotes": 4.0,
        "server_total": 9.0,
    }
    assert cpu_ms_per_call(spent, 0) is None
