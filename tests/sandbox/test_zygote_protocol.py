"""The zygote's messages: a request and a report reach the zygote's own processes as they were sent."""

from __future__ import annotations

import resource

from service.sandbox import zygote_protocol as protocol


def test_a_request_and_a_report_pass_between_the_zygotes_processes_unchanged() -> None:
    request: protocol.CallRequest = {
        "id": 7,
        "slot": 3,
        "argv": ["/usr/bin/python3", "-B", "main.py"],
        "timeout_s": 2.5,
        "rlimits": [(resource.RLIMIT_CPU, 3, 4), (resource.RLIMIT_NOFILE, 64, 64)],
        "niceness": 10,
        "shm_bytes": 1 << 26,
    }
    report: protocol.CallReport = {"exit_code": 0, "duration_ms": 1.5, "cpu_ms": 0.9, "max_rss_kb": 9000}
    assert protocol.unpack_call(protocol.pack(request)) == request
    assert protocol.unpack_report(protocol.pack(report)) == report
