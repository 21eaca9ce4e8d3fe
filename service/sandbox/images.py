"""Each lean zygote's own copy of the interpreter and the shared libraries it maps.

The kernel keeps one lock per file for the processes that map it (`i_mmap_rwsem`): every fork copies
each of its file mappings under that lock, and every exit removes them under it. All calls map the
interpreter, libc and a dozen more files, so with hundreds of calls starting and ending at once (a batch
of loops killed at their deadline) each handoff of those locks waits for its next holder's turn on a
CPU among them, and a call that ended in time spent seconds in its exit (docs/reliability.md, issue 14).
A lean zygote whose sandbox has its own copy of each of those files, bound over the original path, takes
locks of its own: the same bytes at the same paths (`sys.executable`, `/proc/self/exe`, every library's
name), shared only by the calls of that zygote. The cost is the page cache of each copy's resident pages.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from pathlib import Path

log = logging.getLogger(__name__)

# Under /usr: what the sandbox binds from the host (the root's lib and bin are links into it on Debian).
SHARED_TREE = "/usr/"
# Run by the sandbox's interpreter with the zygote's directory as argv[1]: the files under /usr that an
# interpreter which imported what a lean zygote imports has mapped.
MAPPED_FILES = """
import sys
sys.path.insert(0, sys.argv[1])
import zygote_server
try:
    import seccomp
except ImportError:
    pass
paths = set()
with open("/proc/self/maps") as maps:
    for line in maps:
        fields = line.split(maxsplit=5)
        if len(fields) == 6 and fields[5].startswith(sys.argv[2]):
            paths.add(fields[5].rstrip("\\n"))
print("\\n".join(sorted(paths)))
"""
# The locale the sandbox's interpreter starts with, which decides the locale files it maps.
PROBE_ENV = {"LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}

Image = tuple[tuple[str, str], ...]


async def mapped_files(python_path: str, server_source: Path) -> list[str]:
    probe = await asyncio.create_subprocess_exec(
        python_path,
        "-B",
        "-c",
        MAPPED_FILES,
        str(server_source),
        SHARED_TREE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=PROBE_ENV,
    )
    out, err = await probe.communicate()
    if probe.returncode != 0:
        raise OSError(f"cannot list the zygote's mapped files: {err.decode(errors='replace')[-300:]}")
    return [line for line in out.decode().splitlines() if line]


def copy_image(files: list[str], directory: Path) -> Image:
    """Copy `files` below `directory` (same relative paths, same modes): (copy, original) pairs, as the
    sandbox binds them. Readable by the sandbox's uid: the directory's parents need only be traversable."""
    image = []
    for original in files:
        copy = directory / original.lstrip("/")
        copy.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        shutil.copy2(original, copy)
        image.append((str(copy), original))
    directory.chmod(0o755)
    return tuple(image)


async def make_images(python_path: str, server_source: Path, root: Path, count: int) -> list[Image]:
    """`count` copies of the files a lean zygote maps, one below `root/<n>` each; none (every zygote then
    maps the host's files) when the files cannot be listed or copied. (At the worker's start, before it
    serves: the copies block the loop for a moment.)"""
    try:
        return copy_images(await mapped_files(python_path, server_source), root, count)
    except OSError as exc:
        log.warning("lean zygotes share the host's interpreter files (%s)", exc)
        shutil.rmtree(root, ignore_errors=True)
        return []


def copy_images(files: list[str], root: Path, count: int) -> list[Image]:
    root.mkdir(mode=0o755, exist_ok=True)
    return [copy_image(files, root / str(number)) for number in range(count)]
