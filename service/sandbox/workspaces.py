"""One workspace per sandbox slot: a directory on the worker's own size- and inode-capped tmpfs when
we may mount, else on the container's filesystem.

A call's `/workspace` is its slot's directory, emptied after every call. As root the worker mounts one
private tmpfs (`nosuid,nodev`) for all its slots, capped at the slots' budgets together
(`workspace_max_bytes` and `workspace_max_files` per slot), so filling the disk or creating millions of
files hits that cap and nothing of the host's. One mount, not one per slot: every call's mount
namespace copies the tree it sees, and a thousand slot mounts made that copy (and its teardown) the
kernel's main work per call. What one call stores is bounded by its memory cgroup (tmpfs pages are
charged to the process that writes them) and each file by RLIMIT_FSIZE. Without root (inside a
container) the slots are plain directories, and the container's own tmpfs mount is the cap.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from service.sandbox.limits import pid_alive

log = logging.getLogger(__name__)

MS_NOSUID, MS_NODEV, MNT_DETACH = 2, 4, 2
# mount(2) directly: a worker mounts one per slot, a thousand of them, at start.
libc = ctypes.CDLL(None, use_errno=True)


def _mount_points_under(root: Path) -> list[Path]:
    prefix = f"{root}/"
    mounts = Path("/proc/self/mounts").read_text().splitlines()
    return [Path(line.split()[1]) for line in mounts if line.split()[1].startswith(prefix)]


def _unmount(path: Path) -> None:
    libc.umount2(str(path).encode(), MNT_DETACH)


def remove_stale(workspace_root: Path) -> None:
    """Clean up after workers that died without closing their workspaces."""
    for directory in workspace_root.glob("worker-*"):
        pid = directory.name.removeprefix("worker-")
        if pid.isdigit() and not pid_alive(int(pid)):
            for mount in _mount_points_under(directory):
                _unmount(mount)
            shutil.rmtree(directory, ignore_errors=True)


class Workspaces:
    def __init__(
        self, root: Path, slots: int, max_bytes: int, max_files: int, uid_of_slot: Callable[[int], int | None]
    ) -> None:
        self.root = root
        self.slots = slots
        self.max_bytes = max_bytes
        self.max_files = max_files
        self.uid_of_slot = uid_of_slot
        self.mounted = os.geteuid() == 0

    def path(self, slot: int) -> Path:
        return self.root / f"slot-{slot}"

    def open(self) -> None:
        self.root.mkdir(mode=0o711, parents=True, exist_ok=True)
        if self.mounted:
            self._mount_tmpfs()
        for slot in range(self.slots):
            path = self.path(slot)
            path.mkdir(mode=0o700, exist_ok=True)
            uid = self.uid_of_slot(slot)
            if uid is not None:
                os.chown(path, uid, uid)

    def _mount_tmpfs(self) -> None:
        # Slots may list nothing but reach their own directory (0711).
        # At most a quarter of the machine's memory, whatever the slot count: tmpfs pages are memory.
        quarter = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 4
        size = min(self.max_bytes * self.slots, quarter)
        options = f"size={size},nr_inodes={self.max_files * self.slots + 16},mode=0711"
        if libc.mount(b"sandpit", str(self.root).encode(), b"tmpfs", MS_NOSUID | MS_NODEV, options.encode()) != 0:
            # Root without CAP_SYS_ADMIN (a container): plain directories.
            reason = os.strerror(ctypes.get_errno())
            log.warning("cannot mount a tmpfs for the workspaces (%s); using plain directories", reason)
            self.mounted = False

    def wipe(self, slot: int) -> None:
        # os.scandir: after every call, where pathlib's objects cost more than the unlinks.
        with os.scandir(self.path(slot)) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(entry.path)  # noqa: PTH108

    def close(self) -> None:
        for mount in _mount_points_under(self.root):
            _unmount(mount)
        if self.mounted:
            _unmount(self.root)
