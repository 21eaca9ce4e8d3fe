"""One program, many inputs: build it once, then give every run an identical fresh workspace.

`BuiltProgram.build` writes and compiles the program in the slot's workspace and saves that
workspace aside; `run` wipes the slot's workspace, restores the saved copy (owned by the slot's uid)
and runs the program on one input. A test case therefore never sees what an earlier one wrote.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from service.models import Job, StageResult
from service.sandbox.executor import Sandbox


class BuiltProgram:
    def __init__(self, sandbox: Sandbox, job: Job, slot: int) -> None:
        self.sandbox = sandbox
        self.job = job
        self.slot = slot
        self.workspace = sandbox.workspaces.path(slot)
        self.saved = sandbox.root / f"built-{job.id}"

    async def build(self) -> StageResult | None:
        """Write and compile the program; the compile stage, if the language has one."""
        compiled = await self.sandbox.prepare(self.workspace, self.job, self.slot)
        shutil.copytree(self.workspace, self.saved, symlinks=True)
        self.saved.chmod(0o700)
        return compiled

    async def run(self, stdin: bytes) -> StageResult:
        self.sandbox.workspaces.wipe(self.slot)
        shutil.copytree(self.saved, self.workspace, symlinks=True, dirs_exist_ok=True)
        self._give_to_slot(self.workspace)
        return await self.sandbox.run(self.workspace, self.job, self.slot, stdin, strict_output=False)

    def close(self) -> None:
        shutil.rmtree(self.saved, ignore_errors=True)
        self.sandbox.workspaces.wipe(self.slot)

    def _give_to_slot(self, root: Path) -> None:
        uid = self.sandbox.slot_uid(self.slot)
        if uid is None:
            return
        for directory, subdirectories, files in os.walk(root):
            for name in [*subdirectories, *files]:
                os.lchown(Path(directory) / name, uid, uid)
