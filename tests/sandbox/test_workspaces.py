"""A slot's workspace is emptied after every call: files, directories and links go; what a link points
at, outside the workspace, stays."""

from __future__ import annotations

import os
from pathlib import Path

from service.sandbox.workspaces import Workspaces


def test_wiping_a_slot_removes_everything_in_it_and_follows_no_link(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    (outside / "kept").mkdir(parents=True)
    (outside / "kept.txt").write_text("mine")
    workspaces = Workspaces(tmp_path / "slots", 2, 1 << 20, 100, lambda slot: None)
    slot, neighbour = workspaces.path(0), workspaces.path(1)
    (slot / "deep" / "deeper").mkdir(parents=True)
    neighbour.mkdir()
    (neighbour / "theirs.txt").write_text("theirs")
    (slot / "deep" / "deeper" / "file").write_text("x")
    (slot / "main.py").write_text("print(1)")
    (slot / "to_a_directory").symlink_to(outside)
    (slot / "to_a_file").symlink_to(outside / "kept.txt")
    (slot / "dangling").symlink_to(tmp_path / "nowhere")
    os.mkfifo(slot / "fifo")
    workspaces.wipe(0)
    assert list(slot.iterdir()) == []
    assert sorted(path.name for path in outside.iterdir()) == ["kept", "kept.txt"]
    assert (outside / "kept.txt").read_text() == "mine"
    assert [path.name for path in neighbour.iterdir()] == ["theirs.txt"]
