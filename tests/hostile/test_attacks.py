"""Hostile code: every attack ends with an honest status within its timeout plus a second, and
the worker stays healthy — the next call still works, and no process or descriptor is left behind."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.bench.procstat import children_by_parent, descendants
from service.stack import LocalStack

TIMEOUT_S = 2.0


def call(api: httpx.Client, language: str, code: str, **options: object) -> dict[str, object]:
    options.setdefault("timeout_s", TIMEOUT_S)
    started = time.monotonic()
    response = api.post("/v1/execute", json={"language": language, "code": code, **options})
    elapsed = time.monotonic() - started
    assert response.status_code == 200, response.text
    result: dict[str, object] = response.json()
    budget = float(options["timeout_s"]) + 1.0  # type: ignore[arg-type]
    if language == "cpp":
        budget += float(result["compile"]["duration_ms"]) / 1000 if result.get("compile") else 0  # type: ignore[index]
    assert elapsed < budget + 0.5, f"took {elapsed:.2f}s: {result}"
    return result


def assert_still_works(api: httpx.Client) -> None:
    result = call(api, "python", "print(open('/etc/hostname').read().strip(), 6 * 7)")
    assert (result["status"], result["stdout"]) == ("ok", "sandbox 42\n")


def settled_footprint(stack: LocalStack) -> tuple[int, int]:
    """The footprint once the zygotes have finished pre-forking for their next call."""
    previous = worker_footprint(stack)
    for _ in range(20):
        time.sleep(0.3)
        current = worker_footprint(stack)
        if current[0] == previous[0]:
            return current
        previous = current
    return previous


def worker_footprint(stack: LocalStack) -> tuple[int, int]:
    """(stray processes under the worker processes, open descriptors of the worker processes)."""
    workers = stack.processes("worker")
    tree = children_by_parent()
    processes = sum(len(stray_processes(worker.pid, tree)) for worker in workers)
    fds = sum(len(descriptors_other_than_groups(worker.pid)) for worker in workers)
    return processes, fds


def parents(tree: dict[int, list[int]]) -> dict[int, int]:
    return {child: parent for parent, children in tree.items() for child in children}


def describe_strays(stack: LocalStack) -> list[str]:
    """Each stray process with its parent and command line, for the failure message."""
    tree = children_by_parent()
    parent_of = parents(tree)
    described = []
    for worker in stack.processes("worker"):
        for pid in sorted(stray_processes(worker.pid, tree)):
            with contextlib.suppress(OSError):
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")[:120]
                described.append(f"{pid} (parent {parent_of.get(pid)}): {argv.decode(errors='replace')}")
    return described


def descriptors_other_than_groups(pid: int) -> list[str]:
    """What a process's descriptors point at, less the counter files of its slots' cgroups: a slot's
    group keeps those open for its life, and a test may use slots no earlier one did."""
    targets = []
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            targets.append(str(fd.readlink()))
    return [target for target in targets if not target.startswith("/sys/fs/cgroup/")]


def is_zygote(pid: int) -> bool:
    """The zygote or a fork of it (bubblewrap's own command line names the server too)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return len(argv) > 2 and argv[2].endswith(b"/zygote_server.py")


def sandboxed(worker: int, tree: dict[int, list[int]]) -> set[int]:
    """Every process under one of the worker's bubblewrap children (a zygote's sandbox or a cold
    call's). Its other children, such as the toolchain probes it runs at start (a slow `scala
    -version` may still run when a test starts), are nothing a call made."""
    found: set[int] = set()
    for child in tree.get(worker, []):
        try:
            program = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")[0]
        except OSError:
            continue
        if program.endswith(b"bwrap"):
            found |= {child, *descendants(child, tree)}
    return found


def stray_processes(worker: int, tree: dict[int, list[int]]) -> set[int]:
    """Sandboxed processes under `worker` that are not what its zygotes keep between calls: the
    zygote's sandbox (bubblewrap), the zygote, and per slot that has had a call A → G → H, with H
    waiting for the slot's next call and childless. Anything else is something a call left behind."""
    everything = sandboxed(worker, tree)
    parent_of = parents(tree)
    kept: set[int] = set()
    for zygote in everything:
        if not is_zygote(zygote) or is_zygote(parent_of.get(zygote, 0)):
            continue
        ancestor = zygote
        while ancestor in everything:
            kept.add(ancestor)
            ancestor = parent_of.get(ancestor, 0)
        for a in tree.get(zygote, []):
            inits = tree.get(a, [])
            waiting = tree.get(inits[0], []) if len(inits) == 1 else []
            if len(waiting) == 1 and not tree.get(waiting[0]):
                kept |= {a, inits[0], waiting[0]}
    return everything - kept


@pytest.fixture(scope="module", autouse=True)
def footprint_is_restored(stack: LocalStack, api: httpx.Client) -> Iterator[None]:
    assert_still_works(api)
    before = settled_footprint(stack)
    yield
    processes, fds = settled_footprint(stack)
    assert processes == before[0], f"a sandboxed process outlived its call: {describe_strays(stack)}"
    # The Redis connection pool may have grown by a few connections under the concurrent test.
    assert fds <= before[1] + 2 * len(stack.processes("worker")) * 4, (before, fds)
    assert api.get("/readyz").json()["workers"] == 2


@pytest.fixture(autouse=True)
def next_call_still_works(api: httpx.Client) -> Iterator[None]:
    yield
    assert_still_works(api)


def test_python_fork_bomb(api: httpx.Client) -> None:
    result = call(api, "python", "import os\nwhile True:\n    try: os.fork()\n    except OSError: pass")
    assert result["status"] == "timeout"


def test_bash_fork_bomb(api: httpx.Client) -> None:
    # The shell returns at once, leaving the bomb in the background; the pid namespace dies with it.
    result = call(api, "bash", ":(){ :|:& };:")
    assert result["status"] in {"ok", "timeout", "error"}


def test_bytearray_memory_bomb(api: httpx.Client) -> None:
    result = call(api, "python", "blocks = []\nwhile True: blocks.append(bytearray(50 * 2**20))", memory_mb=256)
    assert result["status"] == "memory_limit"


def test_numpy_memory_bomb(api: httpx.Client) -> None:
    # Under a cgroup the pages are really touched until the kernel's OOM kill: give it time to get there.
    code = "import numpy as np\nx = np.ones((1 << 33,), dtype=np.uint8)"
    result = call(api, "python", code, memory_mb=512, timeout_s=10)
    assert result["status"] == "memory_limit"


def test_infinite_loop(api: httpx.Client) -> None:
    assert call(api, "python", "while True: pass")["status"] == "timeout"


def test_sleep_past_the_timeout(api: httpx.Client) -> None:
    assert call(api, "bash", "sleep 100")["status"] == "timeout"


def test_one_gigabyte_of_stdout(api: httpx.Client) -> None:
    code = "import sys\nchunk = b'x' * 2**20\nfor _ in range(1024): sys.stdout.buffer.write(chunk)"
    result = call(api, "python", code, timeout_s=20)
    assert result["status"] == "ok"
    assert result["truncated"] is True
    assert result["stdout_bytes"] == 2**30
    assert len(str(result["stdout"])) == 2**20


def test_writing_outside_the_workspace_fails_and_reaches_nothing(api: httpx.Client) -> None:
    marker = f"sandpit-escape-{uuid.uuid4().hex}"
    code = f"""
for path in ['/usr/{marker}', '/etc/{marker}', '/{marker}', '/proc/{marker}']:
    try:
        open(path, 'w').write('x')
        print('wrote', path)
    except OSError as exc:
        print('refused', path, exc.errno)
open('/tmp/{marker}', 'w').write('private tmp is fine')
"""
    result = call(api, "python", code)
    assert "wrote" not in str(result["stdout"])
    for path in [f"/usr/{marker}", f"/etc/{marker}", f"/{marker}", f"/tmp/{marker}"]:
        assert not Path(path).exists()


def test_rm_rf_root(api: httpx.Client) -> None:
    result = call(api, "bash", "timeout 3 rm -rf --no-preserve-root / 2>/dev/null; ls /usr/bin | wc -l", timeout_s=10)
    assert result["status"] == "ok"
    assert int(str(result["stdout"])) > 100  # the read-only system is still all there
    assert Path("/usr/bin/python3").exists()


def test_secrets_of_the_host_and_worker_are_out_of_view(api: httpx.Client) -> None:
    code = r"""
import os
def read(path):
    try:
        return open(path, 'rb').read()
    except OSError as exc:
        return f'refused {exc.errno}'.encode()
print(read('/etc/shadow'))
print(read('/proc/1/environ'))
print(sorted(os.environ))
print(os.getuid(), len([p for p in os.listdir('/proc') if p.isdigit()]))
"""
    result = call(api, "python", code)
    stdout = str(result["stdout"])
    lines = stdout.splitlines()
    assert lines[0].startswith("b'refused")
    assert "REDIS" not in stdout and "SANDPIT" not in stdout and "PYENV" not in stdout
    uid, visible_processes = lines[3].split()
    assert uid == "1000"
    assert int(visible_processes) <= 3  # bubblewrap's init, python, nothing of the host


def test_other_calls_files_are_invisible(stack: LocalStack) -> None:
    secret = uuid.uuid4().hex
    writer = f"open('secret.txt', 'w').write('{secret}')\nimport time\ntime.sleep(3)"
    reader = f"""
import os
needle = '{secret[::-1]}'[::-1]  # not the secret verbatim, or this very source would match
found = []
for top in ['/', '/tmp', '/workspace']:
    for root, dirs, files in os.walk(top):
        if root.startswith(('/proc', '/sys', '/usr', '/dev')):
            dirs[:] = []
            continue
        for name in files:
            try:
                if needle in open(os.path.join(root, name), errors='ignore').read(100000):
                    found.append(os.path.join(root, name))
            except OSError:
                pass
print(found)
"""

    async def both() -> list[dict[str, object]]:
        async with httpx.AsyncClient(base_url=stack.url, timeout=60) as client:
            writing = asyncio.create_task(client.post("/v1/execute", json={"language": "python", "code": writer}))
            await asyncio.sleep(1.0)
            read = await client.post("/v1/execute", json={"language": "python", "code": reader})
            return [(await writing).json(), read.json()]

    wrote, read = asyncio.run(both())
    assert wrote["status"] == "ok"
    assert read["status"] == "ok", read
    assert read["stdout"] == "[]\n"


def test_sockets_reach_nothing(api: httpx.Client, stack: LocalStack) -> None:
    assert stack.settings.redis_url.startswith("unix://"), "the local stack's Redis is reached by its socket"
    redis_socket = stack.settings.redis_url.removeprefix("unix://").partition("?")[0]
    code = f"""
import socket
unix = socket.socket(socket.AF_UNIX)
try:
    unix.connect({redis_socket!r})
    print('connected to redis')
except OSError as exc:
    print('refused', exc.errno)
for target in [('127.0.0.1', {stack.redis_port}), ('127.0.0.1', {stack.settings.port}), ('1.1.1.1', 80)]:
    try:
        socket.create_connection(target, timeout=1)
        print('connected', target)
    except OSError as exc:
        print('refused', exc.errno)
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    udp.sendto(b'x', ('8.8.8.8', 53))
    print('sent')
except OSError as exc:
    print('refused', exc.errno)
"""
    result = call(api, "python", code)
    assert "connected" not in str(result["stdout"]) and "sent" not in str(result["stdout"])
    assert str(result["stdout"]).count("refused") == 5


def test_daemon_that_outlives_the_call_is_killed(api: httpx.Client, stack: LocalStack) -> None:
    before = settled_footprint(stack)[0]
    code = """
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(60)
    os._exit(0)
print('parent done')
"""
    result = call(api, "python", code)
    assert result["status"] == "ok"
    assert settled_footprint(stack)[0] == before


def test_kill_everything(api: httpx.Client) -> None:
    result = call(api, "bash", "kill -9 -1; echo still here")
    assert result["status"] in {"ok", "error"}


def test_filling_the_workspace(api: httpx.Client) -> None:
    code = "i=0; while dd if=/dev/zero of=f$i bs=1M count=16 2>/dev/null; do i=$((i+1)); done; echo full after $i"
    result = call(api, "bash", code, timeout_s=10, memory_mb=128)
    # The workspace's pages are the call's memory (its cgroup), or the files stop at the cap of a file
    # (RLIMIT_FSIZE) and of the workers' workspaces: either way it ends within the call's own budget.
    if result["status"] == "ok":
        assert int(str(result["stdout"]).split()[-1]) * 16 <= 128 + 64, result
    else:
        assert result["status"] == "memory_limit", result


def test_thousands_of_files(api: httpx.Client) -> None:
    code = """
n = 0
try:
    while n < 100000:
        open(f'f{n}', 'w').close()
        n += 1
except OSError as exc:
    print('stopped', n, exc.errno)
"""
    result = call(api, "python", code, timeout_s=10)
    assert str(result["stdout"]).startswith("stopped")


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("ptrace", "print(libc.ptrace(16, 1, 0, 0), ctypes.get_errno())"),  # PTRACE_ATTACH to pid 1
        ("mount", "print(libc.mount(b'none', b'/tmp', b'tmpfs', 0, None), ctypes.get_errno())"),
        ("unshare", "print(libc.unshare(0x10000000), ctypes.get_errno())"),  # CLONE_NEWUSER
        ("setns", "print(libc.setns(os.open('/proc/self/ns/net', 0), 0), ctypes.get_errno())"),
    ],
)
def test_privileged_syscalls_are_refused(api: httpx.Client, name: str, code: str) -> None:
    result = call(api, "python", f"import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n{code}")
    assert result["status"] == "ok", result
    assert result["stdout"] == "-1 1\n", name  # EPERM


def test_new_namespaces_from_the_shell_are_refused(api: httpx.Client) -> None:
    result = call(api, "bash", "unshare -Ur id")
    assert result["status"] == "error"


def test_signals_cannot_reach_the_worker(api: httpx.Client, stack: LocalStack) -> None:
    pids = " ".join(str(worker.pid) for worker in stack.processes("worker"))
    # Every pid the call could name (its own excepted): the worker's host pids, its init, the rest.
    code = f"import os, signal\nfor pid in [{pids.replace(' ', ', ')}, *range(1, 3000)]:\n"
    code += "    if pid == os.getpid(): continue\n"
    code += "    try: os.kill(pid, signal.SIGKILL)\n    except OSError: pass\nprint('done')"
    result = call(api, "python", code)
    assert result["stdout"] == "done\n"
    assert all(worker.poll() is None for worker in stack.processes("worker"))


def test_deep_recursion(api: httpx.Client) -> None:
    code = "import sys\nsys.setrecursionlimit(10**8)\ndef f(n): return f(n + 1) + 1\nf(0)"
    result = call(api, "python", code, memory_mb=128, timeout_s=10)
    assert result["status"] in {"error", "memory_limit"}


def test_cpp_stack_overflow(api: httpx.Client) -> None:
    code = "int f(int n){ volatile char pad[1024]; pad[0]=n; return f(n+1)+pad[0]; }\nint main(){ return f(0); }"
    result = call(api, "cpp", code)
    assert result["status"] == "error"
    assert result["signal"] == 11


def test_cpp_include_dev_random_is_stopped(api: httpx.Client) -> None:
    result = call(api, "cpp", "#include </dev/random>\nint main(){}")
    assert result["status"] in {"compile_error", "timeout"}


def test_cpp_template_bomb_is_compile_error(api: httpx.Client) -> None:
    code = "template<int N> struct B { static const int v = B<N+1>::v + 1; };\nint main(){ return B<0>::v; }"
    result = call(api, "cpp", code)
    assert result["status"] == "compile_error"


def test_binary_garbage_on_stdout_is_returned_safely(api: httpx.Client) -> None:
    result = call(api, "python", "import os, sys\nsys.stdout.buffer.write(os.urandom(200000))")
    assert result["status"] == "ok"
    assert result["stdout_bytes"] == 200000
    assert isinstance(result["stdout"], str)


HOSTILE = [
    ("python", "while True: pass"),
    ("python", "x = bytearray(2**34)"),
    ("python", "import os\nwhile True:\n    try: os.fork()\n    except OSError: pass"),
    ("bash", "yes | head -c 50000000"),
    ("bash", "sleep 100"),
]


async def test_hostile_calls_do_not_disturb_normal_ones(stack: LocalStack) -> None:
    limits = httpx.Limits(max_connections=300)
    async with httpx.AsyncClient(base_url=stack.url, timeout=300, limits=limits) as client:

        async def normal(i: int) -> tuple[int, dict[str, object]]:
            body = {"language": "python", "code": f"print({i} + 1)", "timeout_s": 30}
            return i, (await client.post("/v1/execute", json=body)).json()

        async def hostile(i: int) -> dict[str, object]:
            language, code = HOSTILE[i % len(HOSTILE)]
            body = {"language": language, "code": code, "timeout_s": 1, "memory_mb": 256}
            result: dict[str, object] = (await client.post("/v1/execute", json=body)).json()
            return result

        calls = [normal(i) for i in range(200)] + [hostile(i) for i in range(50)]
        results = await asyncio.gather(*calls)
    normals = [r for r in results if isinstance(r, tuple)]
    assert len(normals) == 200
    for i, result in normals:
        assert (result["status"], result["stdout"]) == ("ok", f"{i + 1}\n"), result
    hostiles = [r for r in results if isinstance(r, dict)]
    assert all(r["status"] in {"timeout", "memory_limit", "ok", "error"} for r in hostiles)
