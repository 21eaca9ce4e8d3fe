"""One program, many inputs: build it once, then give every run an identical fresh workspace.

`BuiltProgram.build` writes and compiles the program in the slot's workspace and saves that
workspace aside; `run` wipes a slot's workspace (the build's own or a borrowed one), restores the
saved copy (owned by that slot's uid) and runs the program on one input. A test case therefore never
sees what another one wrote.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from service.models import Job, Limits, StageResult
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

    async def run(self, stdin: bytes, slot: int, limits: Limits) -> StageResult:
        """Run once on `stdin` under `limits` in `slot` (the build's own or another idle one), from a fresh copy."""
        workspace = self.sandbox.workspaces.path(slot)
        self.sandbox.workspaces.wipe(slot)
        shutil.copytree(self.saved, workspace, symlinks=True, dirs_exist_ok=True)
        self._give_to_slot(workspace, slot)
        try:
            job = self.job.model_copy(update={"limits": limits})
            return await self.sandbox.run(workspace, job, slot, stdin, strict_output=False)
        finally:
            self.sandbox.workspaces.wipe(slot)

    def close(self) -> None:
        shutil.rmtree(self.saved, ignore_errors=True)
        self.sandbox.workspaces.wipe(self.slot)

    def _give_to_slot(self, root: Path, slot: int) -> None:
        uid = self.sandbox.slot_uid(slot)
        if uid is None:
            return
        for directory, subdirectories, files in os.walk(root):
            for name in [*subdirectories, *files]:
                os.lchown(Path(directory) / name, uid, uid)
