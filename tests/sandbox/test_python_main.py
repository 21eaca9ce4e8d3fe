"""`run_python` alone, without the service: a script forked from a warm interpreter prints and ends exactly
as the same script run bare (`python3 main.py`), for the whole compatibility corpus and for the corners of
CPython's start-up and shutdown that the corpus does not reach. How both runs are made: tests/compat/runs.py.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import pytest

from service.sandbox.python_main import reseed_random_generators, run_main, system_exit_status, unbuffered_stdio
from tests.compat.runs import (
    PYTHON,
    SANDBOX_DIR,
    bare_program_run,
    program_names,
    program_source,
    program_stdin,
    run_bare,
    run_forked,
)

CORNERS = {
    "exit_code_beyond_a_c_long": "import sys\nsys.exit(2**70)\n",
    "exit_code_negative": "import sys\nsys.exit(-1)\n",
    "exit_with_a_float": "import sys\nsys.exit(3.5)\n",
    "exit_with_a_multiline_message": 'raise SystemExit("multi\\nline")\n',
    "exit_subclass": "class Done(SystemExit):\n    pass\nraise Done(7)\n",
    "exit_builtin_of_site": 'print("bye")\nexit(3)\n',
    "excepthook_that_raises": (
        "import sys\ndef hook(*args):\n    raise ValueError('hook broke')\nsys.excepthook = hook\n1/0\n"
    ),
    "excepthook_that_exits": "import sys\ndef hook(*args):\n    raise SystemExit(5)\nsys.excepthook = hook\n1/0\n",
    "excepthook_missing": "import sys\ndel sys.excepthook\n1/0\n",
    "excepthook_none": "import sys\nsys.excepthook = None\n1/0\n",
    "main_kept_alive_elsewhere_is_cleared": (
        "import sys, collections\n"
        "class Noisy:\n    def __del__(self):\n        print('del', self.name)\n"
        "_private, public = Noisy(), Noisy()\n_private.name, public.name = 'private', 'public'\n"
        "collections.keep = sys.modules[__name__]\n"
    ),
    "keyboard_interrupt_subclass_exits_1": "class Stop(KeyboardInterrupt):\n    pass\nraise Stop('sub')\n",
    "interrupt_while_joining_threads_at_exit": (
        "import signal, threading, time\n"
        "def interrupt(*args):\n    raise KeyboardInterrupt\n"
        "signal.signal(signal.SIGALRM, interrupt)\n"
        "threading.Thread(target=time.sleep, args=(0.5,)).start()\n"
        "signal.setitimer(signal.ITIMER_REAL, 0.1)\n"
        "print('main done')\n"
    ),
    "unraisablehook_sees_the_exit_flush_failure": (
        "import os, sys\n"
        "def hook(u):\n    print('custom unraisable:', u.exc_type.__name__, u.object, file=sys.stderr)\n"
        "sys.unraisablehook = hook\nprint('x')\nos.close(1)\n"
    ),
    "stdout_closed_by_the_script": "import sys\nsys.stdout.write('x' * 10000)\nsys.stdout.close()\n",
    "stdout_replaced_by_the_script": "import io, sys\nprint('real')\nsys.stdout = io.StringIO()\nprint('hidden')\n",
    "del_of_an_object_in_the_traceback": (
        "class D:\n    def __del__(self):\n        print('del D')\ndef f():\n    d = D()\n    1/0\nf()\n"
    ),
    "del_of_cycles_with_gc_disabled": (
        "import gc\ngc.disable()\n"
        "class N:\n    def __init__(s, name):\n        s.name, s.other = name, None\n"
        "    def __del__(s):\n        print('del', s.name)\n"
        "a, b = N('a'), N('b')\na.other, b.other = b, a\ndel a, b\nc = N('c')\nprint('end')\n"
    ),
    "import_of_main_itself": "import __main__\nx = 5\nprint(__main__.x, __main__.__name__)\n",
    "module_docstring": '"""Module docstring."""\nprint(__doc__)\n',
    "byte_order_mark": '\ufeffprint("bom ok")\n',
    "fork_child_falls_off_the_end": (
        "import os\nprint('start', flush=True)\nif os.fork() == 0:\n    print('child')\n"
        "else:\n    os.wait()\n    print('parent')\n"
    ),
    "warning_stacklevel_beyond_the_script": "import warnings\nwarnings.warn('deep', stacklevel=2)\n",
    "print_stack_at_top_level": "import traceback\ntraceback.print_stack()\n",
    "inspect_stack_at_top_level": "import inspect\nprint(len(inspect.stack()))\n",
    "no_frame_under_the_script": "import sys\nprint(sys._getframe().f_back)\n",
    "threading_atexit_before_atexit": (
        "import atexit, threading\n"
        "threading._register_atexit(lambda: print('threading atexit'))\n"
        "atexit.register(lambda: print('atexit'))\n"
    ),
    "logging_to_stderr": (
        "import logging\nlogging.basicConfig(level=logging.INFO)\n"
        "logging.info('hello %s', 'log')\nlogging.getLogger('x').warning('warn')\n"
    ),
    "syntax_error_at_end_of_file": "x = 1\nprint(x\n",
    # Read in 64 KiB pieces: a script of several.
    "script_longer_than_one_read": "# " + "x" * 200_000 + "\nprint('read whole')\n",
    "standard_stream_attributes": (
        "import sys\n"
        "print(sys.getrecursionlimit(), sys.stdin.fileno(), sys.stdout.fileno(), sys.stdout.buffer.raw.name)\n"
        "print(sys.stdout.mode, sys.stdin.mode, sys.stdin.newlines, sys.stdin.buffer, sys.stderr.buffer)\n"
    ),
}


@pytest.mark.parametrize("name", program_names())
def test_corpus_program_forked_behaves_as_bare_python(name: str) -> None:
    assert run_forked(program_source(name), program_stdin(name)) == bare_program_run(name)


@pytest.mark.parametrize("source", CORNERS.values(), ids=CORNERS.keys())
def test_corner_case_forked_behaves_as_bare_python(source: str) -> None:
    assert run_forked(source) == run_bare(source)


def test_a_script_that_cannot_be_opened_is_reported_as_the_interpreter_reports_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "main.py"
    bare = subprocess.run([PYTHON, "-I", str(missing)], capture_output=True, text=True, timeout=60)
    status, interrupted = run_main(types.ModuleType("__main__"), str(missing))
    said = capsys.readouterr().err
    assert (status, interrupted) == (bare.returncode, False) == (2, False)
    # Only the interpreter's own path differs: the bare run is Debian's, this test runs under another.
    assert said.split(": ", 1)[1] == bare.stderr.split(": ", 1)[1]


@pytest.mark.parametrize(
    ("code", "status"),
    [(None, 0), (0, 0), (3, 3), (256, 0), (-1, 255), (True, 1), (2**63, 255), (-(2**63), 0), ("bye", 1)],
)
def test_system_exit_status_is_what_the_interpreter_exits_with(code: object, status: int) -> None:
    assert system_exit_status(SystemExit(code)) == status


@pytest.mark.parametrize(
    ("orig_argv", "unbuffered"),
    [
        (["python3", "main.py"], False),
        (["python3", "-u", "main.py"], True),
        (["python3", "-IuB", "main.py"], True),
        (["python3", "-X", "dev", "-u", "main.py"], True),
        (["python3", "-Wu", "main.py"], False),
        (["python3", "-W", "u", "main.py"], False),
        (["python3", "-c", "pass", "-u"], False),
        (["python3", "main.py", "-u"], False),
    ],
)
def test_unbuffered_stdio_is_read_from_the_interpreter_options(
    monkeypatch: pytest.MonkeyPatch, orig_argv: list[str], unbuffered: bool
) -> None:
    monkeypatch.delenv("PYTHONUNBUFFERED", raising=False)
    monkeypatch.setattr(sys, "orig_argv", orig_argv)
    assert unbuffered_stdio() is unbuffered


def test_pythonunbuffered_counts_unless_the_environment_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONUNBUFFERED", "1")
    monkeypatch.setattr(sys, "orig_argv", ["python3", "main.py"])
    assert unbuffered_stdio() is not sys.flags.ignore_environment


def test_generators_seeded_on_import_are_seeded_afresh(monkeypatch: pytest.MonkeyPatch) -> None:
    """The zygote imported them once for every call: without a new seed each call would draw the same."""
    seeded: list[bool] = []
    monkeypatch.setitem(sys.modules, "numpy.random", types.SimpleNamespace(seed=lambda: seeded.append(True)))
    state = random.getstate()
    reseed_random_generators()
    assert random.getstate() != state
    assert seeded == [True]


# argv: the directory of python_main, the file to write the findings to, then "pipes" or "file": what
# the call's descriptors 0-2 are. Makes the streams ahead, as the zygote does, then takes the call's
# descriptors and its streams, as a call's process does; reports how they compare with streams made
# afresh on the same descriptors.
STREAMS_OF_A_CALL = """
import json, os, sys, tempfile
sys.path.insert(0, sys.argv[1])
import python_main
zygote_fds = [os.fstat(fd) for fd in range(3)]
python_main.make_pipe_streams()
found = {"zygote_fds_kept": [(a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
                              for a, b in zip(zygote_fds, (os.fstat(fd) for fd in range(3)))]}
if sys.argv[3] == "pipes":
    read_end, write_end = os.pipe()
    call_fds = [read_end, write_end, write_end]
else:
    call_fds = [os.open(tempfile.mktemp(), os.O_RDWR | os.O_CREAT) for _ in range(3)]
for target, fd in enumerate(call_fds):
    os.dup2(fd, target)
python_main.reopen_standard_streams()
def traits(stream):
    return [stream.encoding, stream.errors, stream.line_buffering, stream.write_through, stream.mode,
            stream.seekable(), stream.isatty(), stream.buffer.raw.name, stream.buffer.__sizeof__(),
            type(stream.buffer).__name__, stream.fileno()]
streams = [sys.stdin, sys.stdout, sys.stderr]
fresh = [python_main.standard_stream(name, fd, writing, True) for name, fd, writing in python_main.STANDARD_STREAMS]
found["made_ahead"] = [a is b for a, b in zip(streams, python_main.PIPE_STREAMS)]
found["same_traits_as_fresh"] = [traits(a) == traits(b) for a, b in zip(streams, fresh)]
with open(sys.argv[2], "w") as out:
    json.dump(found, out)
"""


def streams_of_a_call(call_fds: str) -> dict[str, list[bool]]:
    with tempfile.TemporaryDirectory() as scratch:
        findings = Path(scratch, "findings.json")
        subprocess.run(
            [PYTHON, "-I", "-B", "-c", STREAMS_OF_A_CALL, str(SANDBOX_DIR), str(findings), call_fds],
            cwd=scratch,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            check=True,
            timeout=60,
        )
        found: dict[str, list[bool]] = json.loads(findings.read_text())
        return found


def test_a_call_on_pipes_takes_the_streams_made_ahead_which_are_those_it_would_make() -> None:
    found = streams_of_a_call("pipes")
    assert found == {
        "zygote_fds_kept": [True, True, True],
        "made_ahead": [True, True, True],
        "same_traits_as_fresh": [True, True, True],
    }


def test_a_call_on_anything_but_pipes_makes_its_own_streams() -> None:
    found = streams_of_a_call("file")
    assert found["made_ahead"] == [False, False, False]
    assert found["same_traits_as_fresh"] == [True, True, True]
