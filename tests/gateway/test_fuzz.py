"""Property-based fuzzing of every endpoint from the OpenAPI spec (schemathesis): the server does what the
document says.

Runs the schemathesis CLI against the real stack, so generated calls really reach workers and sandboxes.
Every answer must be declared: its status code, content type, body schema and headers, and none may be
a 5xx. Examples per operation are bounded to keep the suite's time predictable. (The CLI rather than
schemathesis' pytest plugin, which does not load under pytest 9.)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from service.stack import LocalStack

EXAMPLES_PER_OPERATION = 10
REQUEST_TIMEOUT_S = 90
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "response_headers_conformance",
]
# The coverage phase (boundary values of every field) spends two minutes generating bodies of up to 1,000
# nested calls for the batch, whose calls are `/v1/execute`'s model, covered there; examples, fuzzing and
# stateful links still exercise the batch itself.
CONFIG = """
[[operations]]
include-path = "/v1/execute/batch"
phases.coverage.enabled = false
"""


def test_every_answer_to_generated_requests_is_declared_and_none_is_a_server_error(
    stack: LocalStack, tmp_path: Path
) -> None:
    cli = Path(sys.executable).with_name("schemathesis")
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    done = subprocess.run(
        [
            str(cli),
            "--config-file",
            str(config),
            "run",
            f"{stack.url}/openapi.json",
            "--checks",
            ",".join(CHECKS),
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
    assert "Unresolvable" not in done.stdout, done.stdout[-6000:]
