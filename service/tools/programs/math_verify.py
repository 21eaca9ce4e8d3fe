"""Tool `math_verify`: is a model's answer equivalent to the reference? HuggingFace's Math-Verify decides.

Both sides go through the library's `parse` (by default its LaTeX and plain-expression extraction, the
reference as gold) and then `verify(gold, answer)` with the caller's options; the answer says what was
extracted from each side. The library's own time limits (signal alarms around parsing and each comparison)
end in `status: "timeout"` with exit status 1, so a reward function never mistakes them for a wrong answer.

The library and the computer-algebra system it is built on run at the versions pinned in
service/tools/libraries/math-verify.txt, installed in a directory of their own that only this program puts
on its path: Debian's older copies stay what every other program sees. This file must not name those
libraries (see HEAVY_IMPORT in service/sandbox/zygote.py), so that it runs in the lean warm interpreter,
never in the one that already imported Debian's copy.
"""

import json
import logging
import sys
from pathlib import Path
from typing import Any

LIBRARIES = "/usr/local/lib/sandpit/tool-libs/math-verify"
TIMEOUT_MARK = "Timeout during"


def use_pinned_libraries() -> None:
    """The pinned directory first, and no site directory at all: the process sees the standard library and
    the pinned libraries, exactly what `python3 -I -S` with that directory on its path sees."""
    if not Path(LIBRARIES).is_dir():
        sys.exit(f"math_verify: {LIBRARIES} is missing; service/tools/install-libraries.sh installs it")
    sys.path[:] = [LIBRARIES, *(entry for entry in sys.path if not entry.endswith(("-packages", "-packages/")))]


def check_not_mixed() -> None:
    """Every pinned package this process loaded came from the pinned directory."""
    pinned = {entry.name.removesuffix(".py") for entry in Path(LIBRARIES).iterdir() if entry.suffix != ".dist-info"}
    for name, module in list(sys.modules.items()):
        origin = getattr(module, "__file__", None) or ""
        if name.split(".")[0] in pinned and origin and not origin.startswith(LIBRARIES):
            raise RuntimeError(f"module {name} was loaded from {origin}, not from {LIBRARIES}")


class TimeoutNotes(logging.Handler):
    """Math-Verify reports its own timeouts only as log warnings (and then answers False or [])."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.timeouts: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith(TIMEOUT_MARK):
            self.timeouts.append(message.split(":", 1)[0])


def extraction_targets(specs: list[dict[str, Any]] | None, library: Any) -> list[Any] | None:
    if specs is None:
        return None
    kinds = {
        "latex": library.LatexExtractionConfig,
        "expr": library.ExprExtractionConfig,
        "string": library.StringExtractionConfig,
    }
    targets = []
    for spec in specs:
        options = {key: value for key, value in spec.items() if key != "type"}
        if "strings" in options:
            options["strings"] = tuple(options["strings"])
        targets.append(kinds[spec["type"]](**options))
    return targets


def parse(library: Any, text: str, targets: list[Any] | None, mode: str | None) -> list[Any]:
    options: dict[str, Any] = {}
    if targets is not None:
        options["extraction_config"] = targets
    if mode is not None:
        options["extraction_mode"] = mode
    return list(library.parse(text, **options))


def shown(library: Any, extracted: list[Any]) -> list[str]:
    """Printing a huge expression can take as long as comparing it: under the library's own alarm."""
    try:
        return list(library.utils.timeout(timeout_seconds=2)(lambda: [str(item) for item in extracted])())
    except library.errors.TimeoutException:
        return [type(item).__name__ for item in extracted]


def main() -> None:
    args = json.load(sys.stdin)
    use_pinned_libraries()
    import math_verify  # type: ignore[import-not-found]
    import math_verify.errors  # type: ignore[import-not-found]
    import math_verify.utils  # type: ignore[import-not-found]

    check_not_mixed()
    notes = TimeoutNotes()
    logger = logging.getLogger("math_verify")
    logger.addHandler(notes)
    logger.propagate = False

    reference = parse(
        math_verify,
        args["reference"],
        extraction_targets(args.get("reference_extraction"), math_verify),
        args.get("reference_extraction_mode"),
    )
    answer = parse(
        math_verify,
        args["answer"],
        extraction_targets(args.get("answer_extraction"), math_verify),
        args.get("answer_extraction_mode"),
    )
    options = {
        key: args[key]
        for key in ("float_rounding", "numeric_precision", "strict", "allow_set_relation_comp")
        if key in args
    }
    equivalent = bool(math_verify.verify(reference, answer, **options))
    timed_out = bool(notes.timeouts) and not equivalent
    verdict = {
        "status": "timeout" if timed_out else "ok",
        "equivalent": equivalent,
        "reward": 1.0 if equivalent else 0.0,
        "extracted": {"answer": shown(math_verify, answer), "reference": shown(math_verify, reference)},
    }
    if timed_out:
        verdict["reason"] = "; ".join(notes.timeouts) + " (Math-Verify's own time limit)"
    print(json.dumps(verdict))
    sys.exit(1 if timed_out else 0)


main()
