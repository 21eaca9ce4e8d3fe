"""The sessions one worker holds: open, run code in, close, and end when idle.

The worker reads its own session command list (nobody else's), so every call of a session reaches the
process that holds its interpreter. Calls of one session run one at a time; different sessions run
side by side. Each answer is published through the same exactly-once script as job results. An
interpreter that dies or stops answering ends its session, and the call gets `session_lost`.

A fork copies the session's workspace into a free session room of this worker, one per branch, and
has the interpreter fork into it (`SessionProcess.fork`); each branch is then a session like any
other, held here, with its own workspace, idle clock and end.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path

from service.config import Settings
from service.models import ExecutionResult, SessionAction, SessionCommand, SessionRecord, Status
from service.queue.errors import REDIS_DOWN
from service.queue.redis_queue import RedisQueue
from service.queue.sessions import NO_ROOM, SessionStore
from service.sandbox.executor import Sandbox
from service.sandbox.session import SessionProcess
from service.sandbox.workspaces import Workspaces

log = logging.getLogger(__name__)

COMMAND_BLOCK_S = 1.0
RETRY_DELAY_S = 0.5
REAP_EVERY_S = 5.0


@dataclass
class HostedSession:
    process: SessionProcess
    index: int
    last_used: float = field(default_factory=time.monotonic)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class SessionHost:
    def __init__(self, settings: Settings, queue: RedisQueue, sandbox: Sandbox, worker_id: str) -> None:
        self.settings = settings
        self.queue = queue
        self.store = SessionStore(queue)
        self.sandbox = sandbox
        self.worker_id = worker_id
        self.sessions: dict[str, HostedSession] = {}
        self.free_indexes = list(range(settings.max_sessions_per_worker))
        # Each session index has its own workspace, a size- and inode-capped tmpfs as call slots have.
        self.workspaces = Workspaces(
            sandbox.root / "sessions",
            settings.max_sessions_per_worker,
            settings.workspace_max_bytes,
            settings.workspace_max_files,
            self.uid_of,
        )
        self.handling: set[asyncio.Task[None]] = set()
        self.stopping = False

    def stop(self) -> None:
        """Stop taking commands: `serve` returns within COMMAND_BLOCK_S."""
        self.stopping = True

    async def serve(self) -> None:
        """Answer this worker's session commands until `stop`; then end every session."""
        self.workspaces.root.mkdir(mode=0o711, exist_ok=True)
        self.workspaces.open()
        reaper = asyncio.create_task(self._reap_idle_forever(), name="session-reaper")
        try:
            # Not ended by cancelling: redis-py does not give up a blocking BRPOP when its task is
            # cancelled (seen: the worker hung on SIGTERM until killed). The flag ends it after one.
            while not self.stopping:
                command = await self._next_command()
                if command is not None:
                    task = asyncio.create_task(self._handle(command), name=f"session-{command.session_id}")
                    self.handling.add(task)
                    task.add_done_callback(self.handling.discard)
        finally:
            reaper.cancel()
            # Records stay: once this worker's heartbeat is gone, gateways answer `session_lost`.
            for session_id in list(self.sessions):
                await self._stop(session_id)
            self.workspaces.close()

    async def _next_command(self) -> SessionCommand | None:
        try:
            return await self.store.next_command(self.worker_id, COMMAND_BLOCK_S)
        except REDIS_DOWN as exc:
            log.warning("session host lost Redis (%s)", exc)
            await asyncio.sleep(RETRY_DELAY_S)
            return None

    async def _handle(self, command: SessionCommand) -> None:
        try:
            result = await self._answer(command)
        except Exception as exc:
            # Ours, not the session's: answered at once rather than left to the gateway's deadline.
            log.exception("session command %s failed", command.action)
            result = ExecutionResult(id=command.id, status=Status.sandbox_error, reason=f"{type(exc).__name__}: {exc}")
        result.worker = self.worker_id
        with contextlib.suppress(*REDIS_DOWN):
            await self.queue.publish_final(result, command.reply_to, None, self.settings.result_ttl_s)

    async def _answer(self, command: SessionCommand) -> ExecutionResult:
        if command.action == SessionAction.open:
            return await self._open(command)
        if command.action == SessionAction.execute:
            return await self._execute(command)
        if command.action == SessionAction.fork:
            return await self._fork(command)
        return await self._close(command)

    async def _open(self, command: SessionCommand) -> ExecutionResult:
        if not self.free_indexes:
            reason = f"this worker already holds {self.settings.max_sessions_per_worker} sessions"
            return ExecutionResult(id=command.id, status=Status.sandbox_error, reason=reason)
        index = self.free_indexes.pop()
        # A room a branch used last belongs to the branch's family's uid until given back to its own.
        own(self.workspaces.path(index), self.uid_of(index))
        workspace, uid = self.workspaces.path(index), self.uid_of(index)
        process = SessionProcess(self.sandbox, workspace, uid, command.memory_mb, group_of(index))
        if not await process.start():
            await process.stop()
            self.workspaces.wipe(index)
            self.free_indexes.append(index)
            return ExecutionResult(id=command.id, status=Status.sandbox_error, reason="the interpreter did not start")
        self.sessions[command.session_id] = HostedSession(process, index)
        record = SessionRecord(worker=self.worker_id, memory_mb=command.memory_mb)
        await self.store.save(command.session_id, record, self.settings.session_idle_s)
        return ExecutionResult(id=command.id, status=Status.ok)

    async def _execute(self, command: SessionCommand) -> ExecutionResult:
        hosted = self.sessions.get(command.session_id)
        if hosted is None:
            return lost(command, "this worker does not hold the session (ended, expired, or the worker restarted)")
        async with hosted.lock:
            stage = await hosted.process.run(command.code, command.timeout_s, command.output_bytes)
            hosted.last_used = time.monotonic()
        if stage is None:
            await self._end(command.session_id)
            return lost(command, "the interpreter exited or stopped answering; its variables are gone")
        return ExecutionResult.from_stage(command.id, stage)

    async def _fork(self, command: SessionCommand) -> ExecutionResult:
        hosted = self.sessions.get(command.session_id)
        if hosted is None:
            return lost(command, "this worker does not hold the session (ended, expired, or the worker restarted)")
        wanted = len(command.branch_ids)
        if len(self.free_indexes) < wanted:
            reason = f"{NO_ROOM}: this worker has room for {len(self.free_indexes)} more sessions, not {wanted}"
            return ExecutionResult(id=command.id, status=Status.sandbox_error, reason=reason)
        made: list[str] = []
        # Under the session's lock: no call of its own runs while it is copied and forked.
        async with hosted.lock:
            for branch_id in command.branch_ids:
                branch = await self._branch(hosted)
                if branch is None:
                    break
                self.sessions[branch_id] = branch
                made.append(branch_id)
            hosted.last_used = time.monotonic()
        if hosted.process.ended:
            await self._end(command.session_id)
        if len(made) < wanted:
            for branch_id in made:
                await self._stop(branch_id)
            return ExecutionResult(id=command.id, status=Status.sandbox_error, reason="the session could not be forked")
        record = SessionRecord(worker=self.worker_id, memory_mb=hosted.process.memory_mb)
        for branch_id in made:
            await self.store.save(branch_id, record, self.settings.session_idle_s)
        return ExecutionResult(id=command.id, status=Status.ok)

    async def _branch(self, parent: HostedSession) -> HostedSession | None:
        index = self.free_indexes.pop()
        workspace = self.workspaces.path(index)
        try:
            copy_workspace(parent.process.workspace, workspace, parent.process.uid)
            branch = await parent.process.fork(workspace, group_of(index))
        except OSError:
            log.exception("cannot fork a session")
            branch = None
        if branch is None:
            self.workspaces.wipe(index)
            self.free_indexes.append(index)
            return None
        return HostedSession(branch, index)

    async def _close(self, command: SessionCommand) -> ExecutionResult:
        await self._end(command.session_id)
        return ExecutionResult(id=command.id, status=Status.ok)

    async def _end(self, session_id: str) -> None:
        """Stop the session and forget where it lived: its next call is a 404."""
        await self._stop(session_id)
        with contextlib.suppress(*REDIS_DOWN):
            await self.store.forget(session_id)

    async def _stop(self, session_id: str) -> None:
        hosted = self.sessions.pop(session_id, None)
        if hosted is None:
            return
        await hosted.process.stop()
        self.workspaces.wipe(hosted.index)
        self.free_indexes.append(hosted.index)

    def uid_of(self, index: int) -> int | None:
        return self.sandbox.uid(self.settings.session_uid_offset + index)

    async def _reap_idle_forever(self) -> None:
        while True:
            await asyncio.sleep(REAP_EVERY_S)
            idle_since = time.monotonic() - self.settings.session_idle_s
            for session_id, hosted in list(self.sessions.items()):
                if hosted.last_used < idle_since and not hosted.lock.locked():
                    log.info("ending idle session %s", session_id)
                    await self._end(session_id)


def group_of(index: int) -> str:
    """The cgroup of the session in room `index` (call slots' are `slot-<n>-<kind>`)."""
    return f"session-{index}"


def own(path: Path, uid: int | None) -> None:
    if uid is not None:
        os.chown(path, uid, uid)


def copy_workspace(source: Path, target: Path, uid: int | None) -> None:
    """The workspace's files, directories and symlinks, owned by `uid` (the branch runs as its parent).
    Anything else (a FIFO, a socket) is left out: copying it would block or mean nothing."""

    def copy_regular(source_file: str, target_file: str) -> None:
        if stat.S_ISREG(os.lstat(source_file).st_mode):
            shutil.copy2(source_file, target_file)

    own(target, uid)
    shutil.copytree(source, target, symlinks=True, copy_function=copy_regular, dirs_exist_ok=True)
    if uid is None:
        return
    for directory, names, files in os.walk(target):
        for name in [*names, *files]:
            os.chown(Path(directory) / name, uid, uid, follow_symlinks=False)


def lost(command: SessionCommand, reason: str) -> ExecutionResult:
    return ExecutionResult(id=command.id, status=Status.session_lost, reason=reason)
