"""Memory, process and CPU limits through the whole service, and the per-call figures that come back.

The shared `stack` runs calls from warm zygotes under this host's cgroups; `cold` starts a fresh
bubblewrap per call (the path taken when zygotes are off or fail), still under the cgroup; `fallback`
is a worker told to use rlimits, as where no cgroup can be had.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from service.config import Settings
from service.sandbox.limits import cgroup_mounts, own_cgroups
from service.stack import LocalStack, free_port
from tests.calls import HOST_HAS_CGROUP_V1, execute

MEMORY_HOGS = {
    "pure_python": "blocks = []\nwhile True:\n    blocks.append(bytearray(2**20))\n",
    "numpy": "import numpy as np\na = np.ones(2**28)\nprint(a.sum())\n",
    "thread": (
        "import threading\n"
        "def hog():\n"
        "    global block\n"
        "    block = bytearray(600 * 2**20)\n"
        "t = threading.Thread(target=hog)\n"
        "t.start()\n"
        "t.join()\n"
        "print('survived')\n"
    ),
    "child_process": (
        "import multiprocessing as mp\n"
        "def hog():\n"
        "    block = bytearray(600 * 2**20)\n"
        "if __name__ == '__main__':\n"
        "    p = mp.Process(target=hog)\n"
        "    p.start()\n"
        "    p.join()\n"
        "    print('child exit', p.exitcode)\n"
    ),
    "subprocess": (
        "import subprocess, sys\n"
        "subprocess.run([sys.executable, '-c', 'b = bytearray(600 * 2**20)'])\n"
        "print('parent goes on')\n"
    ),
}

THREADS = (
    "from concurrent.futures import ThreadPoolExecutor\n"
    "with ThreadPoolExecutor(16) as p:\n"
    "    print(sum(p.map(abs, range(-50, 50))))\n"
)


def stack_with(**overrides: object) -> Iterator[httpx.Client]:
    settings = Settings(port=free_port(), worker_concurrency=2, default_timeout_s=10.0, **overrides)  # type: ignore[arg-type]
    with (
        LocalStack(settings, workers=1, redis_url_given=False) as local,
        httpx.Client(base_url=local.url, timeout=120) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def cold() -> Iterator[httpx.Client]:
    yield from stack_with(warm_interpreters=False)


@pytest.fixture(scope="module")
def fallback() -> Iterator[httpx.Client]:
    yield from stack_with(sandbox_limits="rlimit")


@pytest.mark.parametrize("name", sorted(MEMORY_HOGS))
def test_allocating_past_the_limit_is_memory_limit(api: httpx.Client, name: str) -> None:
    result = execute(api, language="python", code=MEMORY_HOGS[name], memory_mb=256)
    assert result["status"] == "memory_limit", result
    assert execute(api, language="python", code="print('next')")["stdout"] == "next\n"


def test_memory_within_the_limit_is_measured(api: httpx.Client) -> None:
    code = "block = bytearray(200 * 2**20)\nblock[::4096] = b'x' * len(block[::4096])\nprint(len(block))"
    result = execute(api, language="python", code=code, memory_mb=512)
    assert result["status"] == "ok", result
    peak = result["peak_memory_kb"]
    assert isinstance(peak, int) and 200 * 1024 <= peak < 400 * 1024
    small = execute(api, language="python", code="print(1)")
    assert isinstance(small["peak_memory_kb"], int) and small["peak_memory_kb"] < 50 * 1024


def test_cpu_time_is_measured(api: httpx.Client) -> None:
    result = execute(api, language="python", code="while True: pass", timeout_s=1.5)
    assert result["status"] == "timeout"
    cpu_ms = result["cpu_ms"]
    # One core, niced, on a 2-core machine that also runs the test: most of the 1.5 s, never more.
    assert isinstance(cpu_ms, float) and 300 < cpu_ms <= 1700
    idle = execute(api, language="python", code="import time\ntime.sleep(0.5)")
    assert isinstance(idle["cpu_ms"], float) and idle["cpu_ms"] < 200


TEN_THOUSAND = {
    "threads": (
        "import threading\nstop = threading.Event()\nfor i in range(10_000):\n"
        "    threading.Thread(target=stop.wait, daemon=True).start()\n",
        "can't start new thread",
    ),
    "processes": (
        "import os, time\nfor i in range(10_000):\n"
        "    if os.fork() == 0:\n        time.sleep(30)\n        os._exit(0)\n",
        "BlockingIOError",
    ),
}


@pytest.mark.parametrize("kind", sorted(TEN_THOUSAND))
def test_ten_thousand_threads_or_processes_stop_at_the_process_limit(api: httpx.Client, kind: str) -> None:
    code, failure = TEN_THOUSAND[kind]
    result = execute(api, language="python", code=code)
    assert result["status"] == "error", result
    assert failure in str(result["stderr"])
    # Nothing of it is left for the next call in the slot.
    after = execute(api, language="python", code="import os, threading\nprint(threading.active_count(), os.getpid())")
    assert after["status"] == "ok" and after["stdout"].split()[0] == "1", after


def test_each_call_has_its_own_dev_shm(api: httpx.Client) -> None:
    code = "import os\nprint(sorted(os.listdir('/dev/shm')))\nopen('/dev/shm/left-behind', 'w').write('x')"
    first = execute(api, language="python", code=code)
    second = execute(api, language="python", code=code)
    assert first["stdout"] == second["stdout"] == "[]\n"


def test_posix_semaphores_and_shared_memory_work(api: httpx.Client) -> None:
    code = (
        "from multiprocessing import Pool, shared_memory\n"
        "def square(n):\n"
        "    return n * n\n"
        "if __name__ == '__main__':\n"
        "    shm = shared_memory.SharedMemory(create=True, size=1024)\n"
        "    shm.buf[:3] = b'abc'\n"
        "    print(bytes(shm.buf[:3]).decode())\n"
        "    shm.close(); shm.unlink()\n"
        "    with Pool(2) as pool:\n"
        "        print(sum(pool.map(square, range(100))))\n"
    )
    result = execute(api, language="python", code=code)
    assert result["status"] == "ok", result
    assert result["stdout"] == "abc\n328350\n"


def test_judge_reports_figures_per_case(api: httpx.Client) -> None:
    body = {
        "language": "python",
        "code": "n = int(input())\nblock = bytearray(n * 2**20)\nprint(n)",
        "cases": [{"stdin": "1\n", "expected_stdout": "1\n"}, {"stdin": "100\n", "expected_stdout": "100\n"}],
    }
    response = api.post("/v1/judge", json=body)
    assert response.status_code == 200, response.text
    cases = response.json()["cases"]
    assert [case["verdict"] for case in cases] == ["accepted", "accepted"]
    assert all(isinstance(case["cpu_ms"], float) for case in cases)
    assert cases[1]["peak_memory_kb"] >= 100 * 1024 > cases[0]["peak_memory_kb"]


@pytest.mark.parametrize("name", ["pure_python", "child_process"])
def test_cold_sandboxes_join_the_cgroup_too(cold: httpx.Client, name: str) -> None:
    result = execute(cold, language="python", code=MEMORY_HOGS[name], memory_mb=256)
    assert result["status"] == "memory_limit", result
    threads = THREADS.replace("16", "32")
    ok = execute(cold, language="python", code=threads)
    assert ok["status"] == "ok" and ok["stdout"] == "2500\n", ok
    assert isinstance(ok["cpu_ms"], float) and isinstance(ok["peak_memory_kb"], int)


def test_the_rlimit_fallback_runs_threads_and_still_limits_memory(fallback: httpx.Client) -> None:
    ok = execute(fallback, language="python", code=THREADS)
    assert ok["status"] == "ok" and ok["stdout"] == "2500\n", ok
    hog = execute(fallback, language="python", code=MEMORY_HOGS["pure_python"], memory_mb=256)
    assert hog["status"] == "memory_limit", hog


def zygote_inits(stack: LocalStack) -> dict[Path, set[int]]:
    """Host pids of the zygotes' slot inits, by memory group: in their calls' groups, their parents not."""
    if not HOST_HAS_CGROUP_V1:
        return {}
    memory = cgroup_mounts()["memory"].directory_of(own_cgroups()["memory"])
    inits: dict[Path, set[int]] = {}
    for worker in stack.processes("worker"):
        for group in (memory / f"sandpit-{worker.pid}").glob("slot-*-*"):
            members = {int(pid) for pid in (group / "cgroup.procs").read_text().split()}
            inits[group] = {pid for pid in members if parent_of(pid) not in members}
    return inits


def oom_kills(group: Path) -> int:
    for line in (group / "memory.oom_control").read_text().splitlines():
        if line.startswith("oom_kill "):
            return int(line.split()[1])
    return 0


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_an_oom_kill_takes_only_the_call(api: httpx.Client, stack: LocalStack) -> None:
    # Each zygote's calls have a group of their own in the slot that holds nothing of ours: the heavy
    # zygote's waiting interpreter (numpy and sympy mapped) is never the victim of a lean call's OOM.
    # Every slot of the stack (2 workers x 4) runs a lean and a heavy call at once, so that each slot's
    # namespaces, and their inits, exist before the hogs run wherever the workers put them.
    naps = ["import time\ntime.sleep(1)", "import numpy, time\ntime.sleep(1)"]
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda code: execute(api, language="python", code=code), naps * 8))
    inits = zygote_inits(stack)
    assert any(inits.values()) or not HOST_HAS_CGROUP_V1
    kills_before = {group: oom_kills(group) for group in inits}
    group = "import re\nprint(re.search(r'memory:.*/(slot-\\d+-\\w+)', open('/proc/self/cgroup').read())[1])"
    for _ in range(4):
        hog = execute(api, language="python", code=MEMORY_HOGS["pure_python"], memory_mb=32)
        assert hog["status"] == "memory_limit", hog
    # The heavy zygote's init (numpy and sympy mapped: large) shares its calls' group; small processes
    # of a call that fill it must still go first.
    small_hogs = (
        "import numpy, subprocess\n"
        "hog = 'import time; b = bytearray(12 * 2**20); b[::4096] = bytes(len(b[::4096])); time.sleep(5)'\n"
        "children = [subprocess.Popen(['python3', '-c', hog]) for _ in range(8)]\n"
        "print([child.wait() for child in children])\n"
    )
    hog = execute(api, language="python", code=small_hogs, memory_mb=64)
    assert hog["status"] == "memory_limit", hog
    lean = execute(api, language="python", code=group)
    heavy = execute(api, language="python", code="import numpy\n" + group)
    # Both still run warm, each in its zygote's group, and no init was the OOM killer's victim.
    assert str(lean["stdout"]).endswith("-lean\n") and str(heavy["stdout"]).endswith("-heavy\n"), (lean, heavy)
    # In every group where the OOM killer struck, the slot's init survived (a slot idle for minutes may
    # have had its namespace dropped meanwhile: only the groups that saw kills tell).
    struck = [group for group in inits if group.exists() and oom_kills(group) > kills_before[group]]
    assert struck or not HOST_HAS_CGROUP_V1
    assert all(Path(f"/proc/{pid}").exists() for group in struck for pid in inits[group]), struck


def test_a_calls_processes_go_first_when_memory_runs_out(api: httpx.Client) -> None:
    code = (
        "import subprocess\n"
        "print(open('/proc/self/oom_score_adj').read().strip())\n"
        "subprocess.run(['cat', '/proc/self/oom_score_adj'])\n"
    )
    assert execute(api, language="python", code=code)["stdout"] == "1000\n1000\n"


def test_cpu_time_has_its_own_limit(api: httpx.Client) -> None:
    # Two threads hashing in C (the GIL released) burn two CPU-seconds per second: RLIMIT_CPU
    # (timeout + 1 s of CPU) ends the call before its wall clock does, and that is a timeout too.
    code = (
        "import hashlib, threading\n"
        "block = bytes(64 * 2**20)\n"
        "def burn():\n"
        "    while True:\n"
        "        hashlib.sha256(block).digest()\n"
        "threads = [threading.Thread(target=burn) for _ in range(2)]\n"
        "[t.start() for t in threads]\n"
        "[t.join() for t in threads]\n"
    )
    result = execute(api, language="python", code=code, timeout_s=10)
    assert result["status"] == "timeout", result
    # SIGXCPU, at 11 CPU-seconds: well before the 10 s of wall clock on two cores.
    assert result["signal"] == signal.SIGXCPU, result
    assert isinstance(result["cpu_ms"], float) and result["cpu_ms"] >= 10_000, result
    assert float(result["duration_ms"]) < 10_000, result  # type: ignore[arg-type]
