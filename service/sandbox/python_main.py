"""Run a Python file inside an already-started interpreter exactly as `python3 main.py` would.

The warm zygote forks a pre-started interpreter for each call and then calls `run_python` on the
call's `main.py`. This module redoes, in that fork, what CPython 3.11's own start-up and shutdown do
for a script (`pymain_run_python`, `create_stdio`, `_PyRun_SimpleFileObject`, `PyErr_Print`,
`_Py_HandleSystemExit`, `Py_FinalizeEx`, `Py_RunMain`), in the same order, so a call prints and ends byte
for byte like a bare run: a fresh `__main__`, fresh standard streams on the call's descriptors, the
script's frame at the bottom of the stack (no frame of ours in a traceback, the full recursion limit),
`SystemExit` codes, non-daemon threads joined, `atexit` handlers, the flush at exit (120 when it fails),
`__del__` of the script's objects, and death by SIGINT after an uncaught `KeyboardInterrupt`.
Standard library only: it runs in the sandbox's interpreter, never with the service. The process must
end (`os._exit`) right after `run_python` returns: the interpreter is left as a shutdown leaves it.
"""

from __future__ import annotations

import _signal  # type: ignore[import-not-found]
import _thread
import atexit
import builtins
import ctypes
import gc
import io
import os
import signal
import stat
import sys
import types
import weakref
from collections.abc import Callable
from importlib.machinery import SourceFileLoader
from typing import Any

DEFAULT_EXCEPTHOOK = sys.__excepthook__
MISSING = object()
EXIT_CANNOT_OPEN = 2
EXIT_FLUSH_FAILED = 120
EXIT_SIGINT = 128 + signal.SIGINT
OUR_DIRECTORY = os.path.dirname(os.path.realpath(__file__))  # noqa: PTH120
STANDARD_STREAMS = (("stdin", 0, False), ("stdout", 1, True), ("stderr", 2, True))
# Modules with a global generator seeded from the OS when imported; seed() with no argument does it again.
SEEDED_ON_IMPORT = ("random", "numpy.random")
ZYGOTE_STREAMS: list[object] = []
# sys.stdin/stdout/stderr for a call whose descriptors 0-2 are pipes (every warm call's), made once by the
# warm interpreter (`make_pipe_streams`): each fork has its own untouched copy of them.
PIPE_STREAMS: list[io.TextIOWrapper | None] = []
# The process prepare() ran in: a fork of it has not been prepared.
prepared_in: int | None = None
# finalize_modules_delete_special's list.
SYS_CLEARED_AT_EXIT = "path argv ps1 ps2 last_type last_value last_traceback path_hooks path_importer_cache meta_path"

# CPython 3.11 (64-bit) internals, checked before each use: PyThreadState's recursion counters,
# PyFrameObject's f_frame, and _PyInterpreterFrame's f_code, frame_obj, previous and is_entry.
KNOWN_INTERNALS = sys.version_info[:2] == (3, 11) and ctypes.sizeof(ctypes.c_void_p) == 8
RECURSION_REMAINING_AT, RECURSION_LIMIT_AT = 32, 36
FRAME_DATA_AT = 24
CODE_AT, FRAME_OBJECT_AT, PREVIOUS_AT, IS_ENTRY_AT = 32, 40, 48, 68
THREAD_STATE = ctypes.PYFUNCTYPE(ctypes.c_void_p)(("PyThreadState_Get", ctypes.pythonapi))
# The warm interpreter's thread (its ident) and that thread's recursion counters (remaining, limit),
# found once (`find_recursion_counters`): a fork's only thread is the thread that forked, with the same
# ident and its thread state at the same address, and a ctypes call and two views per call write ~10
# pages of the image.
RECURSION_COUNTERS: list[tuple[int, ctypes.c_int, ctypes.c_int]] = []


class Stop(Exception):
    """The script asked to end the process (SystemExit), with this exit status."""

    def __init__(self, status: int) -> None:
        super().__init__(status)
        self.status = status


def run_python(path: str) -> int:
    """Run the script `path` (relative to the current directory) as `python3 path`: the exit status,
    or no return at all when the script dies by SIGINT as the interpreter would."""
    cwd = os.getcwd()  # noqa: PTH109
    # As _Py_abspath makes it: joined to the current directory, never normalised.
    filename = os.path.join(cwd, path)  # noqa: PTH118
    become_script_interpreter(path, cwd)
    main = new_main_module(filename)
    try:
        status, interrupted = run_main(main, filename)
    except Stop as stop:
        # Py_Exit: straight to finalisation, `__file__` still set, never death by SIGINT.
        status, interrupted = stop.status, False
    # From here only sys.modules holds the script's module, as in a bare interpreter's shutdown.
    main_ref = weakref.ref(main)
    del main
    if not finalize(main_ref):
        status = EXIT_FLUSH_FAILED
    if interrupted:
        die_by_sigint()
        return EXIT_SIGINT
    return status


def prepare() -> None:
    """Optional, in the call's own process while it waits for its call: what run_python would do for
    the call that does not depend on it, done ahead, off the call's time.

    That is seeding the random generators afresh, and running the rest on throwaway objects: the
    process is a fork of the warm interpreter, and each page of it run_python writes (a reference count
    is enough) is copied on first touch."""
    global prepared_in
    begin_own_process()
    prepared_in = os.getpid()
    compile(b"pass", "<prepare>", "exec", dont_inherit=True)
    weakref.ref(types.ModuleType("__main__"))
    SourceFileLoader("__main__", "<prepare>")


def begin_own_process() -> None:
    """What a forked copy of the warm interpreter must not share with the others."""
    reseed_random_generators()
    own_main_thread()


def own_main_thread() -> None:
    """The main thread's native id as a bare run has it (its own process's): CPython 3.11 does not
    update it after a fork, so a call forked from the warm interpreter would show the zygote's."""
    threading = sys.modules.get("threading")
    if threading is not None:
        threading.main_thread()._set_native_id()


# Start-up: what the interpreter sets up for a script before running it.


def become_script_interpreter(path: str, cwd: str) -> None:
    sys.argv = [path]
    sys.orig_argv = [sys.orig_argv[0] if sys.orig_argv else sys.executable, path]
    # The script's real directory first, as pymain_run_python computes it; the zygote's own is no
    # business of the script's.
    rest = [entry for entry in sys.path if entry != OUR_DIRECTORY]
    sys.path[:] = [script_directory(path, cwd), *rest]
    reopen_standard_streams()
    # _signal's, not signal's: the same handler, without the enum conversions of signal.signal (~20
    # pages of the image a call's process would otherwise write).
    _signal.signal(_signal.SIGINT, _signal.default_int_handler)
    if prepared_in != os.getpid():
        begin_own_process()


def script_directory(path: str, cwd: str) -> str:
    """dirname(realpath(path)). For a name in the current directory that is not a symbolic link that
    is the current directory itself, which getcwd() gives already resolved: one lstat instead of
    realpath's walk up every component (~50 µs in a call's process)."""
    if "/" not in path and not is_symbolic_link(path):
        return cwd
    return os.path.dirname(os.path.realpath(path))  # noqa: PTH120


def is_symbolic_link(path: str) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(path).st_mode)
    except OSError:
        return False


def reopen_standard_streams() -> None:
    """New sys.stdin/stdout/stderr on descriptors 0-2, made as create_stdio() makes them at start-up.

    The zygote's own were made for its descriptors, since replaced by the call's pipes: their tty check
    (line buffering) and buffer size held for those. On pipes, the ones the warm interpreter made ahead
    are exactly those: nothing else of a descriptor counts."""
    ahead = PIPE_STREAMS if PIPE_STREAMS and all(is_pipe(fd) for fd in range(len(STANDARD_STREAMS))) else None
    # (The streams made ahead already hold this answer: the environment is the warm interpreter's.)
    buffered = ahead is not None or not unbuffered_stdio()
    for index, (name, fd, writing) in enumerate(STANDARD_STREAMS):
        # Kept, so never flushed: what the zygote may have left in them is not the call's output.
        ZYGOTE_STREAMS.extend((getattr(sys, name), getattr(sys, f"__{name}__")))
        stream = ahead[index] if ahead else standard_stream(name, fd, writing, buffered)
        setattr(sys, name, stream)
        setattr(sys, f"__{name}__", stream)


def make_pipe_streams() -> None:
    """Once, in the warm interpreter before it forks calls: the streams `reopen_standard_streams` would
    make on pipes, made on a pipe put on descriptors 0-2 for the moment (ours go back after). Making
    them writes to pages of the image a call's process shares (codec lookups, buffers, the checks of
    each descriptor): ~75 copy-on-write faults per call, measured, that a copy made ahead does not."""
    saved: list[int] = []
    try:
        for fd in range(len(STANDARD_STREAMS)):
            saved.append(os.dup(fd))
    except OSError:
        # A descriptor 0-2 is closed here: the calls make their own streams.
        for fd in saved:
            os.close(fd)
        return
    read_end, write_end = os.pipe()
    try:
        for _, fd, writing in STANDARD_STREAMS:
            os.dup2(write_end if writing else read_end, fd)
        buffered = not unbuffered_stdio()
        PIPE_STREAMS[:] = [standard_stream(name, fd, writing, buffered) for name, fd, writing in STANDARD_STREAMS]
    finally:
        for fd, original in enumerate(saved):
            os.dup2(original, fd)
            os.close(original)
        os.close(read_end)
        os.close(write_end)


def is_pipe(fd: int) -> bool:
    try:
        return stat.S_ISFIFO(os.fstat(fd).st_mode)
    except OSError:
        return False


def standard_stream(name: str, fd: int, writing: bool, buffered: bool) -> io.TextIOWrapper | None:
    """Encoding and errors are the interpreter's configuration, which its own streams carry."""
    old = getattr(sys, f"__{name}__")
    encoding = getattr(old, "encoding", "utf-8")
    errors = getattr(old, "errors", "backslashreplace" if fd == 2 else "strict")
    return open_standard_stream(fd, name, writing, buffered, encoding, errors)


def reseed_random_generators() -> None:
    """Seed afresh the generators that seed themselves on import, as in a bare run: imported by the
    warm interpreter, they would otherwise draw the same numbers in every call."""
    for module_name in SEEDED_ON_IMPORT:
        module = sys.modules.get(module_name)
        if module is not None:
            module.seed()


def unbuffered_stdio() -> bool:
    """The interpreter's `buffered_stdio` setting, negated: -u, or PYTHONUNBUFFERED unless -E/-I."""
    if not sys.flags.ignore_environment and os.environ.get("PYTHONUNBUFFERED"):
        return True
    options = iter(sys.orig_argv[1:])
    for option in options:
        if option == "-" or not option.startswith("-"):
            return False
        if option.startswith("--"):
            continue
        for position, letter in enumerate(option[1:], start=2):
            if letter == "u":
                return True
            if letter in "cm":
                return False
            if letter in "WX":
                # The rest of this word, or else the next one, is the option's argument.
                if position == len(option):
                    next(options, None)
                break
    return False


def open_standard_stream(
    fd: int, name: str, writing: bool, buffered: bool, encoding: str, errors: str
) -> io.TextIOWrapper | None:
    try:
        os.fstat(fd)
    except OSError:
        return None
    # stdin is always buffered: TextIOWrapper needs read1().
    buffering = -1 if buffered or not writing else 0
    binary: Any = open(fd, "wb" if writing else "rb", buffering, closefd=False)  # noqa: SIM115
    raw = binary.raw if buffering else binary
    raw.name = f"<{name}>"
    line_buffering = buffered and (raw.isatty() or fd == 2)
    stream = io.TextIOWrapper(
        binary, encoding, errors, newline="\n", line_buffering=line_buffering, write_through=not buffered
    )
    stream.mode = "w" if writing else "r"  # type: ignore[misc]
    return stream


def new_main_module(filename: str) -> types.ModuleType:
    """A `__main__` as add_main_module() and set_main_loader() make it, in the same slot of sys.modules,
    so pickling finds the script's classes there."""
    main = types.ModuleType("__main__")
    vars(main).update(__annotations__={}, __builtins__=builtins)
    main.__loader__ = SourceFileLoader("__main__", filename)
    main.__file__ = filename
    main.__cached__ = None  # type: ignore[attr-defined]
    sys.modules["__main__"] = main
    return main


# Running the script: _PyRun_SimpleFileObject and PyErr_Print.


def run_main(main: types.ModuleType, filename: str) -> tuple[int, bool]:
    """Compile and run the script; the status and whether an uncaught KeyboardInterrupt ended it.
    Raises `Stop` when SystemExit ended it."""
    try:
        text = read_source(filename)
    except OSError as error:
        write_stderr(f"{sys.executable}: can't open file {filename!r}: [Errno {error.errno}] {error.strerror}\n")
        return EXIT_CANNOT_OPEN, False
    failure: BaseException | None = None
    try:
        # dont_inherit: the script gets no __future__ flag of this module's.
        code = compile(text, filename, "exec", dont_inherit=True)
        exec_at_bottom_of_stack(code, main.__dict__)
    except BaseException as escaped:
        failure = escaped
    flush_quietly()
    interrupted = type(failure) is KeyboardInterrupt
    if failure is not None:
        # Outside the except block, as in C: the hook sees no exception being handled, and nothing it
        # raises is chained to the script's.
        print_uncaught(without_our_frames(failure))
    for name in ("__file__", "__cached__"):
        main.__dict__.pop(name, None)
    return (0 if failure is None else 1), interrupted


def read_source(filename: str) -> bytes:
    """The script's bytes, os-level: a file object (FileIO, BufferedReader) costs the call more than the
    read, in code and pages of the warm image it touches."""
    fd = os.open(filename, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        # Below malloc's mmap threshold: a larger buffer would be mapped and unmapped for each read.
        while chunk := os.read(fd, 1 << 16):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def exec_at_bottom_of_stack(code: types.CodeType, namespace: dict[str, Any]) -> None:
    """exec() as if no frame were under the script's: ours (and the zygote's) neither use up the
    recursion limit (a RecursionError would come early, and say "[Previous line repeated N more
    times]" with a smaller N) nor show in traceback.print_stack(), inspect.stack(), sys._getframe()
    or the frame a warning's stacklevel lands on."""
    if not KNOWN_INTERNALS:
        exec(code, namespace)
        return

    def on_entry(frame: types.FrameType, event: str, _: object) -> None:
        if event == "call" and frame.f_code is code:
            sys.setprofile(None)
            unlink_caller(frame)

    reset_recursion_depth()
    sys.setprofile(on_entry)
    try:
        exec(code, namespace)
    finally:
        if sys.getprofile() is on_entry:
            sys.setprofile(None)


def reset_recursion_depth() -> None:
    """Depth 0 here, so -1 for our caller: exec() counts as one call, the script's frame is the first."""
    found = RECURSION_COUNTERS[0] if RECURSION_COUNTERS else None
    counters = found[1:] if found is not None and found[0] == _thread.get_ident() else recursion_counters()
    if counters is None:
        return
    remaining, limit = counters
    if limit.value == sys.getrecursionlimit() and 0 < remaining.value <= limit.value:
        remaining.value = limit.value


def find_recursion_counters() -> None:
    """Once, in the warm interpreter before it forks calls (see RECURSION_COUNTERS)."""
    counters = recursion_counters() if KNOWN_INTERNALS else None
    RECURSION_COUNTERS[:] = [(_thread.get_ident(), *counters)] if counters is not None else []


def recursion_counters() -> tuple[ctypes.c_int, ctypes.c_int] | None:
    thread_state = THREAD_STATE()
    if not thread_state:
        return None
    remaining = ctypes.c_int.from_address(thread_state + RECURSION_REMAINING_AT)
    return remaining, ctypes.c_int.from_address(thread_state + RECURSION_LIMIT_AT)


def unlink_caller(frame: types.FrameType) -> None:
    """Make the script's (entry) frame the last on its stack: f_back None. Only the walk back from it
    uses the link; returning from an entry frame restores the C caller's frame from the C stack."""
    data = pointer_at(id(frame) + FRAME_DATA_AT)
    if not data or pointer_at(data + CODE_AT) != id(frame.f_code) or pointer_at(data + FRAME_OBJECT_AT) != id(frame):
        return
    if ctypes.c_bool.from_address(data + IS_ENTRY_AT).value:
        ctypes.c_void_p.from_address(data + PREVIOUS_AT).value = None


def pointer_at(address: int) -> int | None:
    return ctypes.c_void_p.from_address(address).value


def without_our_frames(failure: BaseException) -> BaseException:
    """The exception with its traceback from the first frame not of this module on."""
    traceback = failure.__traceback__
    while traceback is not None and traceback.tb_frame.f_globals is globals():
        traceback = traceback.tb_next
    return failure.with_traceback(traceback)


def print_uncaught(failure: BaseException) -> None:
    """PyErr_Print: SystemExit ends the process, anything else goes to sys.excepthook."""
    if isinstance(failure, SystemExit):
        raise Stop(system_exit_status(failure))
    sys.last_type, sys.last_value, sys.last_traceback = type(failure), failure, failure.__traceback__
    hook: Any = getattr(sys, "excepthook", MISSING)
    if hook is MISSING:
        write_stderr("sys.excepthook is missing\n")
        DEFAULT_EXCEPTHOOK(type(failure), failure, failure.__traceback__)
        return
    hook_failure: BaseException | None = None
    try:
        hook(type(failure), failure, failure.__traceback__)
    except BaseException as raised:
        hook_failure = without_our_frames(raised)
    if hook_failure is None:
        return
    if isinstance(hook_failure, SystemExit):
        raise Stop(system_exit_status(hook_failure))
    write_stderr("Error in sys.excepthook:\n")
    DEFAULT_EXCEPTHOOK(type(hook_failure), hook_failure, hook_failure.__traceback__)
    write_stderr("\nOriginal exception was:\n")
    DEFAULT_EXCEPTHOOK(type(failure), failure, failure.__traceback__)


def system_exit_status(exit_request: SystemExit) -> int:
    """_Py_HandleSystemExit: None is 0, an int is its low byte (what exit() keeps), and anything else
    is printed to stderr and gives 1."""
    code = exit_request.code
    if code is None:
        return 0
    if isinstance(code, int):
        # Out of a C long, PyLong_AsLong gives -1.
        value = int(code)
        return value & 0xFF if -(2**63) <= value < 2**63 else 0xFF
    write_stderr(f"{code}\n")
    return 1


def write_stderr(text: str) -> None:
    if sys.stderr is not None:
        sys.stderr.write(text)
    else:
        os.write(2, text.encode(errors="backslashreplace"))


# Shutdown: Py_FinalizeEx and Py_RunMain.


def finalize(main: weakref.ref[types.ModuleType]) -> bool:
    """Py_FinalizeEx as far as a script can see it; False when flushing stdout or stderr failed."""
    threading = sys.modules.get("threading")
    if threading is not None:
        try:
            threading._shutdown()
        except BaseException as failure:
            write_unraisable(without_our_frames(failure), threading)
    atexit._run_exitfuncs()
    flushed = flush_standard_streams()
    if gc.isenabled():
        gc.collect()
    release_main(main)
    # The interpreter's second flush finds sys already emptied: what `__del__` printed is flushed as
    # the streams are freed, and a failure there is silent.
    flush_quietly()
    return flushed


def flush_quietly() -> None:
    """flush_io(): stderr then stdout, errors dropped."""
    for name in ("stderr", "stdout"):
        # (try/except, not contextlib.suppress: one object and a few written pages fewer per flush.)
        try:  # noqa: SIM105
            getattr(sys, name).flush()
        except BaseException:
            pass


def flush_standard_streams() -> bool:
    """flush_std_files(): a failing stdout is reported as unraisable, a failing stderr silently."""
    flushed = True
    for name in ("stdout", "stderr"):
        stream = getattr(sys, name, None)
        if stream is None or is_closed(stream):
            continue
        try:
            stream.flush()
        except Exception as failure:
            flushed = False
            if name == "stdout":
                write_unraisable(without_our_frames(failure), stream)
    return flushed


def is_closed(stream: Any) -> bool:
    try:
        return bool(stream.closed)
    except Exception:
        return True


def release_main(main: weakref.ref[types.ModuleType]) -> None:
    """finalize_modules for the script's module: its objects die, and their `__del__` runs, as at the
    end of a bare run. The interpreter first drops the special names that keep objects alive (and
    the import system: a `__del__` cannot import any more)."""
    for name in (*SYS_CLEARED_AT_EXIT.split(), "__interactivehook__"):
        setattr(sys, name, None)
    for name in ("stdin", "stdout", "stderr"):
        setattr(sys, name, getattr(sys, f"__{name}__"))
    sys.modules["__main__"] = None  # type: ignore[assignment]
    gc.collect()
    module = main()
    if module is not None:
        # Still referenced from elsewhere: _PyModule_ClearDict, `_private` names first.
        namespace = module.__dict__
        del module
        clear_namespace(namespace)


def clear_namespace(namespace: dict[str, Any]) -> None:
    private = [name for name in namespace if name.startswith("_") and not name.startswith("__")]
    rest = [name for name in namespace if name not in set(private) and name != "__builtins__"]
    for name in (*private, *rest):
        namespace[name] = None


def write_unraisable(failure: BaseException, culprit: object) -> None:
    """PyErr_WriteUnraisable(culprit), through sys.unraisablehook as the interpreter calls it."""
    hook_args: Any = unraisable_hook_args_type()((type(failure), failure, failure.__traceback__, None, culprit))
    try:
        sys.unraisablehook(hook_args)
    except BaseException:
        sys.__unraisablehook__(hook_args)


def unraisable_hook_args_type() -> Callable[[tuple[object, ...]], object]:
    """UnraisableHookArgs, the only argument the default hook takes, which `sys` does not export:
    caught from one unraisable exception of our own."""
    caught: list[object] = []
    previous = sys.unraisablehook
    sys.unraisablehook = caught.append
    try:
        FailingFinalizer()
    finally:
        sys.unraisablehook = previous
    return type(caught[0])


class FailingFinalizer:
    def __del__(self) -> None:
        raise RuntimeError


def die_by_sigint() -> None:
    """exit_sigint(): end as a process killed by ^C, so the caller knows it was interrupted."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGINT)
