"""Branchable sessions on a stack of their own: a fork copies the interpreter's state and workspace, each
branch is a session of its own, the tenant's quota counts branches, and hostile code stays in its branch."""

from __future__ import annotations

import asyncio
import importlib.util
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.client import SandpitClient, SandpitError
from service.config import Settings
from service.sandbox.limits import cgroup_mounts
from service.stack import LocalStack, free_port

QUOTA = 8
EXAMPLE = Path(__file__).parents[2] / "examples" / "best_of_n_fork.py"


@pytest.fixture(scope="module")
def fork_stack() -> Iterator[LocalStack]:
    settings = Settings(
        port=free_port(),
        worker_concurrency=2,
        max_sessions_per_worker=10,
        tenant_max_sessions=QUOTA,
        max_session_forks=4,
        default_timeout_s=5.0,
        heartbeat_ttl_s=4,
        session_idle_s=10,
    )
    with LocalStack(settings, workers=1, redis_url_given=False) as local:
        yield local


@pytest.fixture(scope="module")
def api(fork_stack: LocalStack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fork_stack.url, timeout=120) as client:
        yield client


def run(api: httpx.Client, session_id: str, code: str, **extra: object) -> dict[str, object]:
    response = api.post(f"/v1/sessions/{session_id}/execute", json={"code": code, **extra})
    assert response.status_code == 200, response.text
    result: dict[str, object] = response.json()
    return result


def output(api: httpx.Client, session_id: str, code: str, **extra: object) -> str:
    result = run(api, session_id, code, **extra)
    assert result["status"] == "ok", result
    return str(result["stdout"])


def fork(api: httpx.Client, session_id: str, count: int | None = None) -> list[str]:
    response = api.post(f"/v1/sessions/{session_id}/fork", json={} if count is None else {"count": count})
    assert response.status_code == 201, response.text
    return [branch["id"] for branch in response.json()["sessions"]]


@pytest.fixture
def opened(api: httpx.Client) -> Iterator[list[str]]:
    """Sessions a test opens or forks, all deleted after it (whether or not they still exist)."""
    sessions: list[str] = []
    yield sessions
    for session_id in sessions:
        api.delete(f"/v1/sessions/{session_id}")


def open_session(api: httpx.Client, opened: list[str], **options: object) -> str:
    response = api.post("/v1/sessions", json=options)
    assert response.status_code == 201, response.text
    session_id: str = response.json()["id"]
    opened.append(session_id)
    return session_id


STATE = """
import os, numpy as np
config = {'seed': os.urandom(8).hex(), 'steps': [1, 2, 3]}
big = np.arange(100 * 2**20 // 8, dtype=np.int64)
open('notes.txt', 'w').write('line one\\nline two\\nline three\\n')
os.makedirs('data', exist_ok=True)
open('data/blob.bin', 'wb').write(os.urandom(2**20))
handle = open('notes.txt')
handle.readline()
raw = open('notes.txt', 'rb', buffering=0)
raw.read(5)
def counter():
    n = 0
    while True:
        n += 1
        yield n
ticks = counter()
next(ticks), next(ticks)
"""
SHOW = (
    "import hashlib\n"
    "print(config['seed'], config['steps'], int(big.sum()), big.nbytes, next(ticks), handle.readline().strip(),"
    " hashlib.sha256(open('data/blob.bin', 'rb').read()).hexdigest(), sorted(os.listdir('.')))"
)


def test_every_branch_starts_as_an_exact_copy_of_the_parent(api: httpx.Client, opened: list[str]) -> None:
    parent = open_session(api, opened)
    output(api, parent, STATE, timeout_s=30)
    branches = fork(api, parent, 2)
    opened.extend(branches)
    # The parent as it would have gone on: the generator's third value, the handle's second line.
    expected = output(api, parent, SHOW)
    seed, steps = expected.split()[0], expected.split()[1]
    assert steps == "[1,"
    assert f"{(100 * 2**20 // 8) * (100 * 2**20 // 8 - 1) // 2} {100 * 2**20} 3 line two" in expected
    for branch in branches:
        # Not re-run: the random seed drawn once in the parent is the same in every branch.
        assert output(api, branch, SHOW) == expected
        assert seed in expected


def test_changes_in_one_branch_are_invisible_to_the_parent_and_siblings(api: httpx.Client, opened: list[str]) -> None:
    parent = open_session(api, opened)
    output(api, parent, STATE, timeout_s=30)
    first, second = fork(api, parent, 2)
    opened.extend([first, second])
    change = (
        "config['steps'].append(99)\nbig[:] = 7\nnext(ticks)\nhandle.readline()\nraw.read(4)\n"
        "open('notes.txt', 'a').write('from the branch\\n')\nopen('new.txt', 'w').write('x')\n"
        "open('/tmp/scratch', 'w').write('x')\nos.remove('data/blob.bin')"
    )
    output(api, first, change)
    look = (
        "print(config['steps'], int(big[:3].sum()), next(ticks), handle.readline().strip(), raw.read(4),"
        " open('notes.txt').read().count('branch'), os.path.exists('new.txt'), os.path.exists('data/blob.bin'),"
        " os.path.exists('/tmp/scratch'))"
    )
    # `raw` is unbuffered: its offset is the kernel's, which a plain fork would share.
    unchanged = "[1, 2, 3] 3 3 line two b'one\\n' 0 False True False\n"
    assert output(api, parent, look) == unchanged
    assert output(api, second, look) == unchanged
    assert output(api, first, look) == "[1, 2, 3, 99] 21 4 line three b'line' 1 True False True\n"


def test_branches_are_full_sessions_that_outlive_their_parent(api: httpx.Client, opened: list[str]) -> None:
    parent = open_session(api, opened)
    output(api, parent, "x = 1")
    (branch,) = fork(api, parent)
    (grandchild,) = fork(api, branch)
    opened.extend([branch, grandchild])
    assert output(api, grandchild, "x += 10\nx") == "11\n"
    assert api.delete(f"/v1/sessions/{parent}").status_code == 204
    assert api.post(f"/v1/sessions/{parent}/execute", json={"code": "x"}).status_code == 404
    assert output(api, branch, "x") == "1\n"
    # Ending a branch leaves the branches made from it alive too.
    assert api.delete(f"/v1/sessions/{branch}").status_code == 204
    assert output(api, grandchild, "x") == "11\n"
    # A branch keeps its parent's limits: a timeout and a memory limit are statuses, and it lives on.
    assert run(api, grandchild, "while True: pass", timeout_s=1)["status"] == "timeout"
    assert run(api, grandchild, "blob = bytearray(4 * 2**30)")["status"] == "memory_limit"
    assert output(api, grandchild, "x") == "11\n"


def test_forking_a_lost_or_unknown_session_is_404_and_bad_counts_are_422(api: httpx.Client, opened: list[str]) -> None:
    assert api.post(f"/v1/sessions/{'0' * 32}/fork").status_code == 404
    parent = open_session(api, opened)
    assert api.post(f"/v1/sessions/{parent}/fork", json={"count": 0}).status_code == 422
    assert api.post(f"/v1/sessions/{parent}/fork", json={"count": 5}).status_code == 422
    assert api.post(f"/v1/sessions/{parent}/fork", json={"count": "two"}).status_code == 422
    assert api.post(f"/v1/sessions/{parent}/fork", json={"branches": 2}).status_code == 422
    # With no body: one branch.
    response = api.post(f"/v1/sessions/{parent}/fork")
    assert response.status_code == 201
    opened.extend(branch["id"] for branch in response.json()["sessions"])
    assert len(response.json()["sessions"]) == 1


def test_forking_past_the_tenant_quota_is_429_and_branches_count(api: httpx.Client, opened: list[str]) -> None:
    parent = open_session(api, opened)
    output(api, parent, "x = 1")
    opened.extend(fork(api, parent, 4))
    opened.extend(fork(api, parent, 3))
    # 8 sessions held: one more branch, or one more session, is past the quota.
    refused = api.post(f"/v1/sessions/{parent}/fork", json={"count": 1})
    assert refused.status_code == 429
    assert refused.json()["reason"] == "session_quota"
    assert "Retry-After" in refused.headers
    assert api.post("/v1/sessions", json={}).status_code == 429
    # Ending a branch gives its place back.
    assert api.delete(f"/v1/sessions/{opened.pop()}").status_code == 204
    opened.extend(fork(api, parent, 1))


def family_processes(marker: str) -> int:
    processes = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    return processes.count(marker)


def test_a_fork_bomb_in_a_branch_stays_in_it(api: httpx.Client, opened: list[str]) -> None:
    parent = open_session(api, opened)
    output(api, parent, "x = 'parent'")
    bomb, sibling = fork(api, parent, 2)
    opened.append(sibling)
    code = "import os\nwhile True:\n    try: os.fork()\n    except OSError: pass"
    assert run(api, bomb, code, timeout_s=2)["status"] in {"timeout", "session_lost"}
    assert api.delete(f"/v1/sessions/{bomb}").status_code in {204, 404}
    assert output(api, parent, "x") == "'parent'\n"
    assert output(api, sibling, "import subprocess\nsubprocess.run(['echo', 'forks again'])\nNone") == "forks again\n"


def test_a_daemon_of_a_branch_ends_with_it_not_with_its_parent(api: httpx.Client, opened: list[str]) -> None:
    parent = open_session(api, opened)
    (branch,) = fork(api, parent)
    opened.append(branch)
    output(api, branch, "import subprocess\nsubprocess.Popen(['setsid', 'sleep', '876543'])\nNone")
    output(api, parent, "import subprocess\nsubprocess.Popen(['setsid', 'sleep', '876542'])\nNone")
    assert family_processes("sleep 876543") == 1
    assert api.delete(f"/v1/sessions/{branch}").status_code == 204
    deadline = time.monotonic() + 10
    while family_processes("sleep 876543"):
        assert time.monotonic() < deadline, "the branch's daemon outlived it"
        time.sleep(0.1)
    assert family_processes("sleep 876542") == 1
    assert output(api, parent, "1") == "1\n"
    assert api.delete(f"/v1/sessions/{parent}").status_code == 204
    deadline = time.monotonic() + 10
    while family_processes("sleep 876542"):
        assert time.monotonic() < deadline, "the parent's daemon outlived it"
        time.sleep(0.1)


def test_a_branch_cannot_write_outside_its_workspace_or_change_its_view(api: httpx.Client, opened: list[str]) -> None:
    parent = open_session(api, opened)
    output(api, parent, "open('mine.txt', 'w').write('parent')")
    (branch,) = fork(api, parent)
    opened.append(branch)
    code = """
import ctypes, os
for path in ['/usr/escaped', '/etc/escaped', '/escaped', '/proc/escaped']:
    try:
        open(path, 'w').write('x')
        print('wrote', path)
    except OSError as exc:
        print('refused', path)
libc = ctypes.CDLL(None, use_errno=True)
print('mount', libc.mount(b'none', b'/workspace', b'tmpfs', 0, None))
print('umount', libc.umount2(b'/workspace', 2))
print('unshare net', libc.unshare(0x40000000))
print('uid', os.getuid())
# What a branch is made with, a session may do too: it gains nothing mount(2) could use.
print('own namespaces', libc.unshare(0x10020000), 'then mount', libc.mount(b'none', b'/tmp', b'tmpfs', 0, None))
"""
    shown = output(api, branch, code)
    assert "wrote" not in shown
    assert shown.count("refused") == 4
    assert "mount -1\numount -1\nunshare net -1\nuid 1000\nown namespaces 0 then mount -1\n" in shown
    assert output(api, branch, "open('mine.txt').read()") == "'parent'\n"


def test_a_branch_sees_and_signals_only_its_own_processes(api: httpx.Client, opened: list[str]) -> None:
    parent = open_session(api, opened)
    output(api, parent, "x = 'parent'")
    killer, sibling = fork(api, parent, 2)
    opened.append(sibling)
    shown = output(
        api, killer, "import os\nprint(os.getpid(), sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))"
    )
    assert shown == "2 [1, 2]\n"
    # kill -9 -1 from a branch reaches every process it can see: its own, not its parent's or siblings'.
    assert (
        run(api, killer, "import subprocess\nsubprocess.run(['bash', '-c', 'kill -9 -1'])")["status"] == "session_lost"
    )
    assert output(api, parent, "x") == "'parent'\n"
    assert output(api, sibling, "x") == "'parent'\n"


def test_each_branch_has_its_own_idle_clock(api: httpx.Client, opened: list[str]) -> None:
    parent = open_session(api, opened)
    output(api, parent, "x = 1")
    (branch,) = fork(api, parent)
    opened.append(branch)
    # The parent is kept busy past the idle timeout (10 s here); the unused branch expires alone.
    deadline = time.monotonic() + 18
    while time.monotonic() < deadline:
        assert output(api, parent, "x") == "1\n"
        time.sleep(2)
    assert api.post(f"/v1/sessions/{branch}/execute", json={"code": "x"}).status_code == 404


def session_memory(stack: LocalStack) -> list[int]:
    """Bytes charged to each session cgroup of the stack's worker that holds a process (cgroup v1)."""
    (worker,) = stack.processes("worker")
    own = next(
        line.split(":", 2)[2]
        for line in Path(f"/proc/{worker.pid}/cgroup").read_text().splitlines()
        if ":memory:" in line
    )
    root = cgroup_mounts()["memory"].directory_of(own) / f"sandpit-{worker.pid}"
    return [
        int((group / "memory.usage_in_bytes").read_text())
        for group in root.glob("session-*")
        if (group / "cgroup.procs").read_text().split()
    ]


@pytest.mark.skipif(not Path("/sys/fs/cgroup/memory").is_dir(), reason="needs the cgroup v1 memory controller")
def test_each_branch_memory_is_counted_in_a_cgroup_of_its_own(
    api: httpx.Client, opened: list[str], fork_stack: LocalStack
) -> None:
    parent = open_session(api, opened)
    output(api, parent, "x = 1")
    heavy, light = fork(api, parent, 2)
    opened.extend([heavy, light])
    output(api, heavy, "blob = b'\\x01' * (200 * 2**20)\nNone")
    usages = sorted(session_memory(fork_stack))
    assert len(usages) == 3, usages
    assert usages[-1] > 200 * 2**20 and usages[-2] < 100 * 2**20, usages
    assert api.delete(f"/v1/sessions/{heavy}").status_code == 204
    assert max(session_memory(fork_stack)) < 100 * 2**20


def test_the_client_forks_and_the_best_of_n_example_picks_the_right_branch(
    fork_stack: LocalStack, opened: list[str]
) -> None:
    with SandpitClient(fork_stack.url) as sandpit:
        root = sandpit.open_session()
        opened.append(root.id)
        sandpit.run_in_session(root.id, "x = 20")
        branches = sandpit.fork_session(root.id, count=2)
        opened.extend(branch.id for branch in branches)
        assert [branch.worker for branch in branches] == [root.worker] * 2
        sandpit.run_in_session(branches[0].id, "x += 1")
        assert [sandpit.run_in_session(branch.id, "x").stdout for branch in branches] == ["21\n", "20\n"]
        with pytest.raises(SandpitError) as caught:
            sandpit.fork_session("f" * 32)
        assert caught.value.status_code == 404
    spec = importlib.util.spec_from_file_location("best_of_n_fork", EXAMPLE)
    assert spec is not None and spec.loader is not None
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    example.SANDPIT_URL = fork_stack.url
    best, rewards = asyncio.run(example.best_of_n(example.PREFIX, example.CANDIDATES, example.lowest_error))
    # Degree 2 is the true model; degree 1 is far off; degree 5 fits a little noise too, never much better.
    assert best in (1, 2)
    assert rewards[0] < rewards[1] - 0.05


def test_killing_the_worker_ends_its_branches_as_session_lost(api: httpx.Client, fork_stack: LocalStack) -> None:
    parent = api.post("/v1/sessions", json={}).json()["id"]
    first, second = fork(api, parent, 2)
    (worker,) = fork_stack.processes("worker")
    worker.kill()
    worker.wait(30)
    started = time.monotonic()
    for session_id in (parent, first, second):
        assert run(api, session_id, "1")["status"] == "session_lost"
    assert time.monotonic() - started < 30
    assert api.post(f"/v1/sessions/{first}/execute", json={"code": "1"}).status_code == 404
