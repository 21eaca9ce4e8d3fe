"""Which calls the CPU scheduler favours, through real warm calls and real cgroup v1 `cpu.shares`: a
call keeps its slot's full weight while it has used little CPU, and drops to the least once it has run
its own code for a couple of milliseconds, however little the kernel has spent on it besides. A loop
is all user-mode CPU; a trivial call's few milliseconds are mostly the kernel's fork, faults and exit.
"""

from __future__ import annotations

import asyncio

import pytest

from service.bench.slots import job
from service.models import Status
from service.sandbox.executor import FAVOURED_USER_CPU_MS
from service.sandbox.limits import V1_SHARES, Standing
from tests.calls import HOST_HAS_CGROUP_V1
from tests.sandbox.warm import warm_sandbox

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(not HOST_HAS_CGROUP_V1, reason="needs root and the cgroup v1 hierarchies"),
]

# 5 ms of the program's own code (more than one 4 ms tick, the grain of the kernel's user/system split; under
# the total CPU the favoured share allows), then a rest.
BURN_THEN_REST = """
import time
start = time.process_time()
while time.process_time() - start < 0.005:
    pass
print("burnt", flush=True)
time.sleep(1.5)
"""
REST = "import time\ntime.sleep(1.5)\nprint('rested')\n"


async def test_a_call_running_its_own_code_leaves_the_favoured_and_a_resting_one_stays() -> None:
    async with warm_sandbox(2) as box:
        if "cpu" not in box.limiter.bases:
            pytest.skip("no writable v1 cpu hierarchy here")
        burner = asyncio.create_task(box.execute(job(BURN_THEN_REST, timeout_s=10), 0))
        rester = asyncio.create_task(box.execute(job(REST, timeout_s=10), 1))
        # Both are resting by now, and the sweeper has looked at them many times over.
        await asyncio.sleep(1.0)
        weights = [
            (box.limiter.bases["cpu"] / f"slot-{slot}-lean" / "cpu.shares").read_text().strip() for slot in (0, 1)
        ]
        spent = box.limiter.group("slot-0-lean").cpu_spent()
        burnt, rested = await burner, await rester
        assert burnt.status == Status.ok and burnt.stdout == "burnt\n", burnt.stderr
        assert rested.status == Status.ok and rested.stdout == "rested\n", rested.stderr
        assert spent.user_ms > FAVOURED_USER_CPU_MS, spent
        assert weights == [str(V1_SHARES[Standing.long]), str(V1_SHARES[Standing.young])], spent
