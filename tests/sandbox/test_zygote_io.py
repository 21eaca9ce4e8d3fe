"""A warm call's stdin, stdout and stderr, served by the worker's plain pipe callbacks: input larger than
a pipe's buffer arrives whole, input the program never reads does not hold up its end, and output past
the cap is cut there and still counted. Real zygotes, real bubblewrap sandboxes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from service.bench.slots import job
from service.models import Job, Status
from service.sandbox.executor import Sandbox
from tests.sandbox.warm import warm_sandbox

pytestmark = pytest.mark.timeout(120)

# Well past a pipe's default buffer (64 KiB): the worker has to wait for room to write it all.
BIG_STDIN = "".join(f"{n}\n" for n in range(100_000))


def job_with(code: str, stdin: str = "", output_bytes: int | None = None) -> Job:
    made = job(code, stdin=stdin)
    if output_bytes is None:
        return made
    return made.model_copy(update={"limits": made.limits.model_copy(update={"output_bytes": output_bytes})})


@pytest_asyncio.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with warm_sandbox(8) as box:
        yield box


async def test_stdin_larger_than_a_pipe_arrives_whole(sandbox: Sandbox) -> None:
    code = "import sys\ndata = sys.stdin.read()\nprint(len(data), sum(int(line) for line in data.split()))"
    for slot in (0, 1):
        result = await sandbox.execute(job_with(code, BIG_STDIN), slot)
        assert result.status == Status.ok, result.stderr
        assert result.stdout == f"{len(BIG_STDIN)} {sum(range(100_000))}\n"


async def test_stdin_the_program_never_reads_does_not_hold_it_up(sandbox: Sandbox) -> None:
    result = await sandbox.execute(job_with("print('done')", BIG_STDIN), 2)
    assert result.status == Status.ok, result.stderr
    assert result.stdout == "done\n"
    # The slot's next call gets its own input, none of the last one's.
    result = await sandbox.execute(job_with("import sys\nprint(repr(sys.stdin.read()))", "mine\n"), 2)
    assert result.stdout == "'mine\\n'\n"


async def test_output_past_the_cap_is_cut_there_and_counted_whole(sandbox: Sandbox) -> None:
    code = "import sys\nsys.stdout.write('x' * 500_000)\nsys.stderr.write('e' * 10)"
    result = await sandbox.execute(job_with(code, output_bytes=100_000), 3)
    assert result.status == Status.ok, result.stderr
    assert result.stdout == "x" * 100_000
    assert result.stdout_bytes == 500_000
    assert result.truncated is True
    assert result.stderr == "e" * 10
