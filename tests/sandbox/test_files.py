"""Reading files back out of a workspace that hostile code prepared, on a real filesystem."""

from __future__ import annotations

import os
from pathlib import Path

from service.sandbox.files import fetch_files, write_files


def test_nested_files_are_written_and_read_back(tmp_path: Path) -> None:
    write_files(tmp_path, {"a/b/c.txt": "aGk="}, uid=None)
    assert (tmp_path / "a/b/c.txt").read_bytes() == b"hi"
    assert fetch_files(tmp_path, ["a/b/c.txt"], 100).files == {"a/b/c.txt": "aGk="}


def test_symlinks_anywhere_on_the_path_are_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("secret")
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    (workspace / "file-link").symlink_to(outside / "secret")
    (workspace / "dir-link").symlink_to(outside)
    fetched = fetch_files(workspace, ["file-link", "dir-link/secret"], 100)
    assert fetched.files == {}
    assert set(fetched.errors) == {"file-link", "dir-link/secret"}


def test_hard_to_read_things_never_block(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    assert fetch_files(tmp_path, ["fifo"], 100).errors == {"fifo": "not a regular file"}


def test_the_byte_budget_is_shared_by_all_fetched_files(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"a" * 60)
    (tmp_path / "b").write_bytes(b"b" * 60)
    fetched = fetch_files(tmp_path, ["a", "b"], 100)
    assert list(fetched.files) == ["a"]
    assert "larger than the 40 bytes" in fetched.errors["b"]
