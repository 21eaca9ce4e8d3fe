"""The compose stack end to end: real calls through gateway, Redis and worker containers, then a worker killed."""

from __future__ import annotations

import asyncio
import subprocess
import time

import httpx
import pytest

from tests.calls import execute
from tests.docker.conftest import ComposeStack

# The first session builds the images (debootstrap, apt, wheels): minutes, not the default 300 s.
pytestmark = pytest.mark.timeout(1800)

CALLS_IN_FLIGHT = 300
NUMPY_SYMPY = "import numpy as np, sympy as sp\nprint(int(np.arange(5).sum()), sp.factor('x**2-1'))"


@pytest.mark.parametrize(
    ("language", "code", "stdout"),
    [
        ("python", "print(1+1)", "2\n"),
        ("python", NUMPY_SYMPY, "10 (x - 1)*(x + 1)\n"),
        ("bash", "echo $((6*7))", "42\n"),
        ("cpp", "#include <iostream>\nint main(){std::cout<<6*7<<std::endl;}", "42\n"),
        # The runtimes that reserve much address space or start threads, as the image installs them.
        ("java", "public class Main { public static void main(String[] a) { System.out.println(6 * 7); } }", "42\n"),
        ("go", 'package main\nimport "fmt"\nfunc main() { fmt.Println(6 * 7) }', "42\n"),
        ("rust", 'fn main() { println!("{}", 6 * 7); }', "42\n"),
        ("nodejs", "console.log(6 * 7)", "42\n"),
    ],
)
def test_each_language_runs_in_the_worker_container(
    compose_api: httpx.Client, language: str, code: str, stdout: str
) -> None:
    result = execute(compose_api, language=language, code=code)
    assert result["status"] == "ok", result
    assert result["stdout"] == stdout


def test_sandbox_in_container_reaches_no_network(compose_api: httpx.Client) -> None:
    code = "import socket\nsocket.create_connection(('172.17.0.1', 6379), 1)"
    result = execute(compose_api, language="python", code=code)
    assert result["status"] == "error", result
    assert "OSError" in str(result["stderr"]) or "unreachable" in str(result["stderr"]), result


def test_infinite_loop_times_out_and_the_worker_carries_on(compose_api: httpx.Client) -> None:
    result = execute(compose_api, language="python", code="while True:\n    pass", timeout_s=1)
    assert result["status"] == "timeout", result
    assert execute(compose_api, language="bash", code="echo alive")["stdout"] == "alive\n"


def test_fork_bomb_is_contained(compose_api: httpx.Client) -> None:
    bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
    result = execute(compose_api, language="python", code=bomb, timeout_s=2)
    assert result["status"] in {"error", "timeout"}, result
    assert execute(compose_api, language="python", code="print('still here')")["stdout"] == "still here\n"


def test_worker_container_limits_calls_with_its_own_cgroup(compose_api: httpx.Client) -> None:
    # The entrypoint delegated a cgroup to the worker before dropping to uid 10001.
    assert compose_api.get("/v1/languages").json()["sandbox_limits"] in {"cgroup_v1", "cgroup_v2"}
    threads = (
        "from concurrent.futures import ThreadPoolExecutor\n"
        "with ThreadPoolExecutor(32) as p:\n"
        "    print(sum(p.map(abs, range(-5, 5))))\n"
    )
    assert execute(compose_api, language="python", code=threads)["stdout"] == "25\n"
    pool = (
        "from multiprocessing import Pool\n"
        "if __name__ == '__main__':\n"
        "    with Pool(2) as p:\n"
        "        print(p.map(abs, [-1, -2]))\n"
    )
    assert execute(compose_api, language="python", code=pool)["stdout"] == "[1, 2]\n"
    hog = execute(compose_api, language="python", code="b = bytearray(600 * 2**20)", memory_mb=256)
    assert hog["status"] == "memory_limit", hog
    assert isinstance(hog["peak_memory_kb"], int) and isinstance(hog["cpu_ms"], float)


def test_nothing_in_the_worker_container_keeps_root_once_it_runs(compose_stack: ComposeStack) -> None:
    # Root and CAP_SYS_ADMIN were the entrypoint's, to delegate the cgroup; pid 1 (tini) and the worker
    # under it run as 10001 with no capability. `docker exec` itself is root: only pid 1 and below count.
    worker = compose_stack.containers("worker")[0]
    for pid in ("1", "$(cat /proc/1/task/1/children | cut -d' ' -f1)"):
        status = subprocess.run(
            ["docker", "exec", worker, "sh", "-c", f"cat /proc/{pid}/status"], capture_output=True, text=True
        ).stdout
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        assert fields["Uid"].split() == ["10001"] * 4, status
        assert int(fields["CapEff"], 16) == int(fields["CapPrm"], 16) == int(fields["CapBnd"], 16) == 0, status
        assert fields["NoNewPrivs"].strip() == "1", status


async def _run_calls(url: str, count: int, started: asyncio.Event) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    async with httpx.AsyncClient(base_url=url, timeout=300, limits=limits) as client:

        async def one(i: int) -> httpx.Response:
            code = f"import time\ntime.sleep(0.2)\nprint({i} * {i})"
            response = await client.post("/v1/execute", json={"language": "python", "code": code})
            started.set()
            return response

        return await asyncio.gather(*(one(i) for i in range(count)))


def test_killed_worker_loses_no_call(compose_stack: ComposeStack) -> None:
    compose_stack.scale_workers(3)
    workers = compose_stack.containers("worker")
    assert len(workers) == 3

    async def scenario() -> list[httpx.Response]:
        first_answer = asyncio.Event()
        calls = asyncio.create_task(_run_calls(compose_stack.url, CALLS_IN_FLIGHT, first_answer))
        await asyncio.wait_for(first_answer.wait(), 120)
        # Calls are now running on every worker; take one away without letting it finish anything.
        killed = await asyncio.create_subprocess_exec("docker", "kill", workers[0], stdout=subprocess.DEVNULL)
        assert await killed.wait() == 0
        return await calls

    began = time.monotonic()
    responses = asyncio.run(scenario())
    elapsed = time.monotonic() - began

    assert [r.status_code for r in responses] == [200] * CALLS_IN_FLIGHT
    results = [r.json() for r in responses]
    assert [r["status"] for r in results] == ["ok"] * CALLS_IN_FLIGHT
    assert [r["stdout"] for r in results] == [f"{i * i}\n" for i in range(CALLS_IN_FLIGHT)]
    assert len({r["id"] for r in results}) == CALLS_IN_FLIGHT
    answered_by = {r["worker"] for r in results}
    assert len(answered_by) >= 2, answered_by
    print(f"{CALLS_IN_FLIGHT} calls, one worker killed, all answered in {elapsed:.1f} s by {len(answered_by)} workers")
