"""The worker container's entrypoint: hand the worker a cgroup subtree of its own, then become the worker.

Container engines mount the cgroup filesystem read-only. Started as root with CAP_SYS_ADMIN (compose and
the Kubernetes manifests do), this remounts it read-write, makes a group `sandpit` owned by the worker's
uid (cgroup v2: with the memory, pids and cpu controllers enabled for it; v1: in the memory, pids and
cpuacct hierarchies), moves itself into it, and then drops to that uid with no capabilities left
(`setpriv`) before it execs the worker, which finds the group as its own and builds its slots under it.
Started as any other user, or where any step is refused, it execs the worker unchanged: the worker then
reports the rlimit fallback. It runs as the container's pid 1, before tini, so that nothing in the
container keeps root once the worker runs; health probes (which the engine starts as the container's
user) go through it with `--drop-only`.

    python3 -m service.sandbox.delegate --uid 10001 -- /usr/bin/tini -- sandpit worker
    python3 -m service.sandbox.delegate --uid 10001 --drop-only -- python3 -m service.worker.health
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from service.sandbox.limits import V1_CONTROLLERS, V2_CONTROLLERS, CgroupMount, cgroup_mounts, own_cgroups, write

GROUP = "sandpit"
# The files of a v2 group its owner needs to manage its own subtree (the kernel's delegation rules).
V2_DELEGATED_FILES = ("cgroup.procs", "cgroup.subtree_control", "cgroup.threads")


def remount_writable(point: Path) -> None:
    if os.access(point, os.W_OK):
        return
    # mount(8) is in every Debian image; the remount needs CAP_SYS_ADMIN.
    if os.spawnvp(os.P_WAIT, "mount", ["mount", "-o", "remount,bind,rw", str(point)]) != 0:
        raise OSError(f"cannot remount {point} read-write")


def delegate_v2(mount: CgroupMount, group: str, uid: int) -> None:
    top = mount.directory_of(group)
    remount_writable(mount.point)
    # Processes may not sit in a group whose controllers are enabled for children: move them to a leaf.
    leaf = top / "init"
    leaf.mkdir(exist_ok=True)
    for pid in (top / "cgroup.procs").read_text().split():
        try:
            write(leaf / "cgroup.procs", pid)
        except ProcessLookupError:
            continue
    write(top / "cgroup.subtree_control", " ".join(f"+{name}" for name in V2_CONTROLLERS))
    mine = top / GROUP
    mine.mkdir(exist_ok=True)
    # Join before handing it over: root here has no CAP_DAC_OVERRIDE to write the worker's files.
    write(mine / "cgroup.procs", "0")
    for path in (mine, *(mine / name for name in V2_DELEGATED_FILES)):
        os.chown(path, uid, uid)


def delegate_v1(mounts: dict[str, CgroupMount], own: dict[str, str], uid: int) -> None:
    for name in V1_CONTROLLERS:
        remount_writable(mounts[name].point)
        mine = mounts[name].directory_of(own.get(name, "/")) / GROUP
        mine.mkdir(exist_ok=True)
        write(mine / "cgroup.procs", "0")
        for path in (mine, *mine.iterdir()):
            os.chown(path, uid, uid)


def delegate(uid: int) -> None:
    mounts, own = cgroup_mounts(), own_cgroups()
    if all(name in mounts for name in V1_CONTROLLERS):
        delegate_v1(mounts, own, uid)
    elif "" in mounts:
        delegate_v2(mounts[""], own.get("", "/"), uid)
    else:
        raise OSError("no cgroup hierarchy is mounted")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uid", type=int, required=True, help="the worker's uid (and gid)")
    parser.add_argument(
        "--drop-only",
        action="store_true",
        help="no cgroup: only run the command as that uid (health probes of a container started as root)",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the command, after --")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if os.geteuid() != 0:
        os.execvp(command[0], command)
    if not args.drop_only:
        try:
            delegate(args.uid)
        except OSError as exc:
            print(f"sandpit: no cgroup for the worker ({exc}); it will limit calls with rlimits", file=sys.stderr)
    drop = [
        "setpriv",
        f"--reuid={args.uid}",
        f"--regid={args.uid}",
        "--clear-groups",
        "--inh-caps=-all",
        "--bounding-set=-all",
        "--no-new-privs",
        "--",
    ]
    os.execvp(drop[0], [*drop, *command])


if __name__ == "__main__":
    main()
