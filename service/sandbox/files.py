"""Files in and out of a workspace: the call's `files` before it runs, its `fetch_files` after.

Paths were checked by the request model (relative, no `..`); this module does not rely on it. Writing
happens before any sandboxed code ran, into a workspace only we have touched. Reading back happens
after the sandboxed code could have planted anything, so every path component is opened relative to
the workspace with O_NOFOLLOW: a symlink (to a host path or anywhere) is refused, not followed, and
only regular files are read (no FIFO that would block the worker, no device).
"""

from __future__ import annotations

import base64
import contextlib
import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from service.models import check_workspace_path, decode_files

READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
DIR_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_DIRECTORY | os.O_CLOEXEC


@dataclass
class Fetched:
    files: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def write_files(workspace: Path, files: dict[str, str], uid: int | None) -> None:
    """Write base64 `files` under `workspace`, owned by the slot's uid so the program may change them."""
    for path, content in decode_files(files).items():
        target = workspace / check_workspace_path(path)
        _make_parents(workspace, target.parent, uid)
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
        try:
            os.write(fd, content)
            if uid is not None:
                os.fchown(fd, uid, uid)
        finally:
            os.close(fd)


def _make_parents(workspace: Path, directory: Path, uid: int | None) -> None:
    missing = [
        parent for parent in [directory, *directory.parents] if parent != workspace and workspace in parent.parents
    ]
    for parent in reversed(missing):
        if parent.exists():
            continue
        parent.mkdir(mode=0o755)
        if uid is not None:
            os.chown(parent, uid, uid)


def fetch_files(workspace: Path, paths: list[str], max_bytes: int) -> Fetched:
    """Read `paths` back as base64 within `max_bytes` in total; say why for each one that cannot be."""
    fetched = Fetched()
    budget = max_bytes
    for path in paths:
        try:
            data = read_inside(workspace, path, budget)
        except FetchRefused as exc:
            fetched.errors[path] = str(exc)
            continue
        budget -= len(data)
        fetched.files[path] = base64.b64encode(data).decode()
    return fetched


class FetchRefused(Exception):
    pass


def read_inside(workspace: Path, path: str, max_bytes: int) -> bytes:
    try:
        parts = check_workspace_path(path).split("/")
    except ValueError as exc:
        raise FetchRefused(str(exc)) from None
    with _opened_dir(workspace, parts[:-1]) as dir_fd:
        try:
            fd = os.open(parts[-1], READ_FLAGS, dir_fd=dir_fd)
        except OSError as exc:
            raise FetchRefused(_why(exc)) from None
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise FetchRefused("not a regular file")
            if info.st_size > max_bytes:
                raise FetchRefused(f"larger than the {max_bytes} bytes left to fetch")
            return os.read(fd, max_bytes + 1)[:max_bytes]
        finally:
            os.close(fd)


@contextlib.contextmanager
def _opened_dir(workspace: Path, parts: list[str]) -> Iterator[int]:
    fd = os.open(workspace, DIR_FLAGS)
    try:
        for part in parts:
            try:
                child = os.open(part, DIR_FLAGS, dir_fd=fd)
            except OSError as exc:
                raise FetchRefused(_why(exc)) from None
            os.close(fd)
            fd = child
        yield fd
    finally:
        os.close(fd)


def _why(exc: OSError) -> str:
    if exc.errno in (errno.ELOOP, errno.ENOTDIR):
        return "a symbolic link or not a directory on the way"
    if exc.errno == errno.ENOENT:
        return "not found"
    return os.strerror(exc.errno or 0)
