"""A worker's zygotes: one lean zygote per `lean_zygote_slots` slots, each started on its own, a slot's
lean calls always in the same one, and every slot's lean namespace made before the first call.

Real bubblewrap sandboxes and cgroups, as in `test_zygote.py`.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from service.bench.slots import job
from service.config import Settings
from service.models import Status
from service.sandbox.executor import Sandbox
from tests.sandbox.warm import warm_sandbox

pytestmark = pytest.mark.timeout(120)

SLOTS = 7
LEAN_ZYGOTE_SLOTS = 3


@pytest_asyncio.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    async with warm_sandbox(SLOTS, lean_zygote_slots=LEAN_ZYGOTE_SLOTS) as box:
        yield box


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_the_default_is_a_lean_zygote_per_32_slots() -> None:
    assert Settings().lean_zygote_slots == 32
    assert Settings(lean_zygote_slots=64).lean_zygote_slots == 64


async def test_a_worker_starts_a_lean_zygote_per_lean_zygote_slots_slots_each_on_its_own(sandbox: Sandbox) -> None:
    assert sandbox.zygotes is not None
    lean = sandbox.zygotes.lean
    # 7 slots, 3 per zygote: three lean zygotes, each a process the worker started (not a fork of another).
    assert len(lean) == 3
    pids = [zygote.process.pid for zygote in lean if zygote.process is not None]
    assert len(set(pids)) == 3
    assert all(parent_of(pid) == parent_of(pids[0]) for pid in pids)
    assert sandbox.zygotes.heavy.process is not None and sandbox.zygotes.heavy.process.pid not in pids


async def test_a_slot_runs_its_lean_calls_in_its_own_zygote(sandbox: Sandbox) -> None:
    assert sandbox.zygotes is not None
    lean = sandbox.zygotes.lean
    for slot in range(SLOTS):
        before = [zygote.calls for zygote in lean]
        result = await sandbox.execute(job("print(6 * 7)"), slot)
        assert result.status == Status.ok and result.stdout == "42\n", result.stderr
        served = [index for index, zygote in enumerate(lean) if zygote.calls != before[index]]
        # 3 slots per zygote: slots 0-2 in the first, 3-5 in the second, 6 in the third.
        assert served == [slot // LEAN_ZYGOTE_SLOTS]
        assert sandbox.zygotes.lean_for(slot) is lean[slot // LEAN_ZYGOTE_SLOTS]


async def test_every_slot_has_its_lean_namespace_before_its_first_call(sandbox: Sandbox) -> None:
    """Made at start: each lean zygote already holds the cgroup of every slot it serves, so no call
    makes a namespace (and joins cgroups) under load."""
    assert sandbox.zygotes is not None
    opened: list[int] = []

    def counted() -> list[int]:
        opened.append(1)
        return []

    for slot in range(SLOTS):
        assert slot in sandbox.zygotes.lean_for(slot).joined
        sandbox.limiter.group(f"slot-{slot}-lean").join_fds = counted  # type: ignore[method-assign]
    results = await asyncio.gather(*(sandbox.execute(job("print('first')"), slot) for slot in range(SLOTS)))
    assert [result.stdout for result in results] == ["first\n"] * SLOTS
    assert opened == []


# What a call sees of its interpreter and libc: their paths, and the file each one is (device, inode).
EXECUTABLE = """
import os, sys
exe = os.readlink('/proc/self/exe')
libc = next(line.split()[-1] for line in open('/proc/self/maps') if '/libc.so' in line)
print(sys.executable, exe, libc)
for path in (exe, libc):
    status = os.stat(path)
    print(status.st_dev, status.st_ino)
"""


async def calls_see(sandbox: Sandbox) -> list[tuple[str, str, str, list[str]]]:
    """What a call in the first slot of each lean zygote sees: sys.executable, /proc/self/exe, libc's
    path, and the (device, inode) of the last two."""
    assert sandbox.zygotes is not None
    seen = []
    for index in range(len(sandbox.zygotes.lean)):
        result = await sandbox.execute(job(EXECUTABLE), index * sandbox.zygotes.lean_zygote_slots)
        assert result.status == Status.ok, result.stderr
        names, *files = result.stdout.splitlines()
        executable, exe, libc = names.split()
        seen.append((executable, exe, libc, files))
    return seen


async def test_each_lean_zygote_maps_its_own_copy_of_the_interpreter_and_libraries_at_the_same_paths() -> None:
    """With `lean_zygote_file_copies`, each lean zygote's calls map files of their own (the kernel's lock
    on a file's mappings, taken by every fork and exit, is then one per zygote), at the paths and with
    the bytes a bare run has."""
    assert Settings().lean_zygote_file_copies, "on by default"
    async with warm_sandbox(SLOTS, lean_zygote_slots=LEAN_ZYGOTE_SLOTS, lean_zygote_file_copies=True) as box:
        seen = await calls_see(box)
        for index, (executable, exe, libc, _) in enumerate(seen):
            assert executable == box.settings.python_path
            assert exe == os.path.realpath(executable)
            assert Path(exe).read_bytes() == (box.root / "images" / str(index) / exe.lstrip("/")).read_bytes()
            assert libc.startswith("/usr/lib/")
    host = {f"{status.st_dev} {status.st_ino}" for status in (Path(exe).stat(), Path(libc).stat())}
    # Three zygotes, three copies of each file, none of them the host's.
    assert len({files[0] for *_, files in seen}) == len({files[1] for *_, files in seen}) == len(seen)
    assert not host & {name for *_, files in seen for name in files}


async def test_without_copies_the_lean_zygotes_map_the_hosts_files() -> None:
    async with warm_sandbox(SLOTS, lean_zygote_slots=LEAN_ZYGOTE_SLOTS, lean_zygote_file_copies=False) as box:
        seen = await calls_see(box)
        assert not (box.root / "images").exists()
    for _, exe, libc, files in seen:
        host = [f"{status.st_dev} {status.st_ino}" for status in (Path(exe).stat(), Path(libc).stat())]
        assert files == host
