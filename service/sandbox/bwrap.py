"""The bubblewrap command line that puts one program in its own namespaces.

Each call gets new user, pid, net, ipc, uts and cgroup namespaces, a read-only view of `/usr` and of
a short list of files from `/etc`, a fresh `/proc` that shows only its own processes, a size-capped
tmpfs `/tmp`, its workspace bound read-write at `/workspace`, an empty environment and no capabilities.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from service.languages import WORKSPACE, host_etc_paths

SANDBOX_UID = 1000
SANDBOX_HOSTNAME = "sandbox"

# Host paths the programs need to start: the dynamic loader's cache, Debian's alternatives links,
# Python's site configuration. Everything else in /etc (shadow, ssh keys, ...) stays out of view.
HOST_ETC = (
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/alternatives",
    "/etc/localtime",
    "/etc/python3",
    "/etc/python3.11",
    # Debian's matplotlib reads its matplotlibrc only from /etc, and fontconfig its configuration.
    "/etc/matplotlibrc",
    "/etc/fonts",
)
ROOT_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")

SANDBOX_ENV = {
    "PATH": "/usr/local/bin:/usr/bin:/bin",
    "HOME": WORKSPACE,
    "TMPDIR": "/tmp",
    "LANG": "C.UTF-8",
    "LC_ALL": "C.UTF-8",
    "PYTHONDONTWRITEBYTECODE": "1",
    # One thread per BLAS pool: without this numpy reserves address space per core and trips RLIMIT_AS.
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "MPLBACKEND": "Agg",
}


def write_etc(directory: Path) -> None:
    """Files the sandbox sees instead of the host's: one user, one group, its own hostname."""
    directory.mkdir(parents=True, exist_ok=True)
    files = {
        "passwd": f"sandbox:x:{SANDBOX_UID}:{SANDBOX_UID}:sandbox:{WORKSPACE}:/bin/bash\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
        "group": f"sandbox:x:{SANDBOX_UID}:\nnogroup:x:65534:\n",
        "hostname": f"{SANDBOX_HOSTNAME}\n",
        "hosts": f"127.0.0.1 localhost {SANDBOX_HOSTNAME}\n::1 localhost\n",
    }
    for name, text in files.items():
        (directory / name).write_text(text)
        (directory / name).chmod(0o644)
    directory.chmod(0o755)


@dataclass(frozen=True)
class BwrapProfile:
    bwrap_path: str
    etc_dir: Path
    tmp_bytes: int
    # What the limits mode needs on top of SANDBOX_ENV (the rlimit fallback's MALLOC_ARENA_MAX).
    extra_env: dict[str, str] = field(default_factory=dict)

    @cached_property
    def base_argv(self) -> list[str]:
        argv = [
            self.bwrap_path,
            "--unshare-user",
            "--unshare-pid",
            "--unshare-net",
            "--unshare-ipc",
            "--unshare-uts",
            "--unshare-cgroup-try",
            "--disable-userns",
            "--die-with-parent",
            # A new session keeps the program away from the worker's terminal (no TIOCSTI).
            "--new-session",
            "--cap-drop",
            "ALL",
            "--uid",
            str(SANDBOX_UID),
            "--gid",
            str(SANDBOX_UID),
            "--hostname",
            SANDBOX_HOSTNAME,
            "--ro-bind",
            "/usr",
            "/usr",
        ]
        for link in map(Path, ROOT_LINKS):
            if link.is_symlink():
                argv += ["--symlink", str(link.readlink()), str(link)]
            elif link.is_dir():
                argv += ["--ro-bind", str(link), str(link)]
        # ... and the configuration each language's toolchain reads (the JDK's security policy, php.ini).
        for path in (*HOST_ETC, *host_etc_paths()):
            if Path(path).exists():
                argv += ["--ro-bind", path, path]
        for name in ("passwd", "group", "hostname", "hosts"):
            argv += ["--ro-bind", str(self.etc_dir / name), f"/etc/{name}"]
        argv += ["--proc", "/proc", "--dev", "/dev"]
        argv += ["--size", str(self.tmp_bytes), "--tmpfs", "/tmp"]
        argv += ["--clearenv"]
        for key, value in {**SANDBOX_ENV, **self.extra_env}.items():
            argv += ["--setenv", key, value]
        return argv

    def command(self, workspace: Path, program: list[str], seccomp_fd: int | None = None) -> list[str]:
        seccomp = ["--seccomp", str(seccomp_fd)] if seccomp_fd is not None else []
        return self._finish([*self.base_argv, *seccomp], workspace, program)

    def zygote_command(
        self,
        slots_dir: Path,
        server_source: Path,
        server_dir: str,
        program: list[str],
        image: tuple[tuple[str, str], ...] = (),
    ) -> list[str]:
        """A long-lived sandbox for a warm zygote that serves every slot. It keeps CAP_SYS_ADMIN *inside
        its own user namespace* to give each slot new pid/mount namespaces (where the slot's workspace,
        from `/slots`, becomes `/workspace` and the others go out of view) and each call new mount/ipc
        namespaces, and loads the seccomp filter into each call itself, so bubblewrap gets no --seccomp.
        `image`: (copy, path) pairs, each copy bound read-only over its path (see `images.py`)."""
        return [
            *self.base_argv,
            *(arg for copy, path in image for arg in ("--ro-bind", copy, path)),
            "--cap-add",
            "CAP_SYS_ADMIN",
            "--ro-bind",
            str(server_source),
            server_dir,
            "--bind",
            str(slots_dir),
            "/slots",
            "--dir",
            WORKSPACE,
            "--chdir",
            "/",
            "--remount-ro",
            "/",
            "--",
            *program,
        ]

    @staticmethod
    def _finish(setup: list[str], workspace: Path, program: list[str]) -> list[str]:
        return [
            *setup,
            "--bind",
            str(workspace),
            WORKSPACE,
            "--chdir",
            WORKSPACE,
            # Last, once every mount point exists: the root tmpfs bubblewrap built becomes read-only too.
            "--remount-ro",
            "/",
            "--",
            *program,
        ]
