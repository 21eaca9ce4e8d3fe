"""A call's process is a fork of a warm interpreter that other calls were forked from too: none of that
may show to the program.

The program sees the threading state a bare `python3` run has (its main thread is this process's, with
its own native id), starts and joins threads, forks children whose threading state is as in a bare
run, and draws random numbers no other call drew. Real sandboxes and zygotes, the lean and the heavy one.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from service.bench.slots import job
from service.models import Status
from service.sandbox.executor import Sandbox
from tests.compat.runs import Run, run_bare
from tests.sandbox.warm import warm_sandbox

pytestmark = pytest.mark.timeout(120)

THREADS_AND_FORKS = """
import os, threading
main = threading.main_thread()
print(main is threading.current_thread(), main.ident == threading.get_ident())
print(main.native_id == threading.get_native_id() == os.getpid())
done = []
workers = [threading.Thread(target=done.append, args=(n,)) for n in range(4)]
for worker in workers:
    worker.start()
for worker in workers:
    worker.join()
print(sorted(done), threading.active_count())
read_end, write_end = os.pipe()
child = os.fork()
if child == 0:
    mine = threading.main_thread().native_id == threading.get_native_id()
    os.write(write_end, f"{mine} {threading.active_count()}".encode())
    os._exit(0)
os.waitpid(child, 0)
print(os.read(read_end, 64).decode())
"""
# One draw from each global generator a program may use unseeded: `random` (which CPython's own fork
# hook reseeds) and numpy's (which only the call's own reseeding does).
RANDOM_DRAWS = "import random{numpy}\nprint(random.getrandbits(64){numpy_draw})\n"


@pytest_asyncio.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with warm_sandbox(4) as box:
        yield box


@pytest.mark.parametrize("extra_import", ["", "import numpy\n"], ids=["lean", "heavy"])
async def test_threads_and_forks_behave_as_in_a_bare_run(sandbox: Sandbox, extra_import: str) -> None:
    source = extra_import + THREADS_AND_FORKS
    expected = await asyncio.to_thread(run_bare, source)
    assert expected.stdout.startswith("True True\nTrue\n[0, 1, 2, 3] 1\n"), expected
    for _ in range(2):
        result = await sandbox.execute(job(source, timeout_s=20), 1)
        assert Run(result.stdout, result.stderr, result.exit_code, result.signal) == expected, result.reason


@pytest.mark.parametrize("with_numpy", [False, True], ids=["lean", "heavy"])
async def test_no_two_calls_draw_the_same_random_numbers(sandbox: Sandbox, with_numpy: bool) -> None:
    code = RANDOM_DRAWS.format(
        numpy=", numpy" if with_numpy else "", numpy_draw=", numpy.random.randint(2**62)" if with_numpy else ""
    )
    draws = []
    for slot in (1, 2, 1, 2):
        result = await sandbox.execute(job(code, timeout_s=20), slot)
        assert result.status == Status.ok, result.stderr
        draws.append(result.stdout.split())
    # Each generator on its own: every call drew a number no other call drew.
    for generator in zip(*draws, strict=True):
        assert len(set(generator)) == len(draws), draws
