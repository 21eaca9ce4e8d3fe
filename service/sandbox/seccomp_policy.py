"""The seccomp filter every sandboxed program runs under, compiled to BPF for bubblewrap.

This file runs in the *sandbox's* interpreter (Debian's python3 with `python3-seccomp`), never in
the service's: `python3 seccomp_policy.py OUT.bpf` writes the filter the worker hands to
`bwrap --seccomp FD` for cold calls, and the warm zygote (`zygote_server.py`) imports it to load the
same filter into each call's process. Default: allow. Refused with EPERM: the syscalls a
tool call never needs and that widen the kernel surface an escape would use. `clone3` gets ENOSYS,
because its flags live in memory seccomp cannot read; libc then falls back to `clone`, whose
namespace flags are checked. Standard library and `seccomp` only, by design.
"""

from __future__ import annotations

import contextlib
import errno
import sys
from collections.abc import Collection

# syscall -> why a tool call has no business making it
REFUSED = {
    "ptrace": "inspect or steer another process",
    "process_vm_readv": "read another process's memory",
    "process_vm_writev": "write another process's memory",
    "kcmp": "compare kernel objects of other processes",
    "mount": "change the filesystem view",
    "umount2": "change the filesystem view",
    "pivot_root": "change the filesystem view",
    "chroot": "change the filesystem view",
    "fsopen": "new mount API",
    "fsconfig": "new mount API",
    "fsmount": "new mount API",
    "fspick": "new mount API",
    "move_mount": "new mount API",
    "open_tree": "new mount API",
    "mount_setattr": "new mount API",
    "unshare": "create namespaces from inside",
    "setns": "join other namespaces",
    "bpf": "load kernel programs",
    "perf_event_open": "kernel profiling, a frequent exploit vector",
    "userfaultfd": "stall the kernel at a chosen fault, a frequent exploit vector",
    "io_uring_setup": "a second syscall interface that bypasses this filter's view",
    "io_uring_enter": "a second syscall interface that bypasses this filter's view",
    "io_uring_register": "a second syscall interface that bypasses this filter's view",
    "keyctl": "kernel keyrings",
    "add_key": "kernel keyrings",
    "request_key": "kernel keyrings",
    "kexec_load": "replace the kernel",
    "kexec_file_load": "replace the kernel",
    "init_module": "load kernel modules",
    "finit_module": "load kernel modules",
    "delete_module": "unload kernel modules",
    "reboot": "reboot the machine",
    "swapon": "change swap",
    "swapoff": "change swap",
    "acct": "process accounting",
    "quotactl": "filesystem quotas",
    "syslog": "read the kernel log",
    "open_by_handle_at": "open files by handle, bypassing the mount view",
    "name_to_handle_at": "make file handles for open_by_handle_at",
    "fanotify_init": "watch filesystems",
    "lookup_dcookie": "kernel profiling",
    "settimeofday": "change the clock",
    "clock_settime": "change the clock",
    "clock_adjtime": "change the clock",
    "adjtimex": "change the clock",
    "iopl": "raw port I/O",
    "ioperm": "raw port I/O",
    "vhangup": "hang up terminals",
    "uselib": "obsolete loader interface",
    "personality": "change the execution domain (e.g. disable ASLR)",
    "move_pages": "move other processes' memory between NUMA nodes",
    "migrate_pages": "move other processes' memory between NUMA nodes",
    "mbind": "NUMA policy",
    "set_mempolicy": "NUMA policy",
}

CLONE_NAMESPACE_FLAGS = {
    "CLONE_NEWNS": 0x00020000,
    "CLONE_NEWCGROUP": 0x02000000,
    "CLONE_NEWUTS": 0x04000000,
    "CLONE_NEWIPC": 0x08000000,
    "CLONE_NEWUSER": 0x10000000,
    "CLONE_NEWPID": 0x20000000,
    "CLONE_NEWNET": 0x40000000,
}

# Added to the filter only when the running libseccomp knows them (older ones miss the newest).
OPTIONAL = {"fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree", "mount_setattr"}
# Refused, but still made by a warm call's own process while it makes its namespaces. So the warm
# zygote splits the policy in two filters, which the kernel applies both: the slot's init loads the
# policy without these once (each call's process inherits it), and each call's process adds a filter
# of these alone when its namespaces are made, before anything of the call runs. Loading a filter
# costs in proportion to its length (the kernel checks, translates and compiles it, and runs it for
# every syscall number to cache the ones it always allows): ~75 µs per call for the whole policy,
# ~15 µs for these two.
CALL_SETUP = ("mount", "unshare")


def make_filter(leave_out: Collection[str] = ()) -> object:
    """The policy, less the syscalls named in `leave_out`, as a libseccomp filter: `.load()` applies
    it, `.export_bpf(file)` compiles it."""
    import seccomp  # type: ignore[import-not-found]

    policy = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    refuse = seccomp.ERRNO(errno.EPERM)
    for name in REFUSED:
        if name in leave_out:
            continue
        try:
            policy.add_rule(refuse, name)
        except (RuntimeError, ValueError):
            if name not in OPTIONAL:
                raise
    for flag in CLONE_NAMESPACE_FLAGS.values():
        policy.add_rule(refuse, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    with contextlib.suppress(RuntimeError, ValueError):
        policy.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    # TIOCSTI pushes bytes into a terminal's input; --new-session already detaches, this is belt and braces.
    policy.add_rule(refuse, "ioctl", seccomp.Arg(1, seccomp.MASKED_EQ, 0xFFFFFFFF, 0x5412))
    return policy


def make_setup_filter() -> object:
    """The rest of the policy, for a process already under `make_filter(leave_out=CALL_SETUP)`."""
    import seccomp

    policy = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    for name in CALL_SETUP:
        policy.add_rule(seccomp.ERRNO(errno.EPERM), name)
    return policy


def build(out_path: str) -> None:
    with open(out_path, "wb") as out:
        make_filter().export_bpf(out)  # type: ignore[attr-defined]


if __name__ == "__main__":
    build(sys.argv[1])
