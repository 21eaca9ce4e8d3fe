"""Property-based fuzzing of every endpoint from the OpenAPI spec (schemathesis): no 5xx, no hang.

Runs the schemathesis CLI against the real stack, so generated calls really reach workers and
sandboxes. Examples per operation are bounded to keep the suite's time predictable. (The CLI
rather than schemathesis' pytest plugin, which does not load under pytest 9.)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from service.stack import LocalStack

EXAMPLES_PER_OPERATION = 10
REQUEST_TIMEOUT_S = 90


def test_no_generated_request_gets_a_server_error_or_hangs(stack: LocalStack, tmp_path: Path) -> None:
    cli = Path(sys.executable).with_name("schemathesis")
    done = subprocess.run(
        [
            str(cli),
            "run",
            f"{stack.url}/openapi.json",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            str(EXAMPLES_PER_OPERATION),
            "--request-timeout",
            str(REQUEST_TIMEOUT_S),
            "--no-color",
        ],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,  # schemathesis keeps a cache directory in its working directory
    )
    summary = done.stdout[-3000:]
    assert done.returncode == 0, summary
    assert " passed" in summary and " failed" not in summary, summary
