"""Tool `math_verify`: is a model's final answer mathematically equal to the reference? (reward 1 or 0)

The answer is the content of the last \\boxed{...} (or the whole text), with LaTeX basics turned into
sympy syntax: \\frac, \\dfrac, \\sqrt, \\sqrt[n], \\cdot, \\times, \\pi, \\infty, ^, \\left/\\right,
\\text{...}, degrees, percent, thousands separators, `x = ...`. Two answers are equal when their
normalized text is, or sympy simplifies their difference to zero, or they agree numerically.
Comma-separated answers are compared element by element (as tuples, or as sets when both are braced).
"""

import json
import re
import sys
from typing import Any

import sympy
from sympy.parsing.sympy_parser import (
    convert_xor,
    implicit_multiplication_application,
    parse_expr,
    standard_transformations,
)

TRANSFORMATIONS = (*standard_transformations, implicit_multiplication_application, convert_xor)
# parse_expr evaluates Python: the answer is model-written, so it only ever sees arithmetic characters
# and a namespace of plain sympy names without builtins (no print, chr, exit to forge a reward with).
SAFE_TEXT = re.compile(r"[0-9A-Za-z+\-*/^().,\s]*")
ATTRIBUTE = re.compile(r"\.(?!\d)")
NAMES = (
    "Symbol Integer Float Rational Function Add Mul Pow sqrt root pi E I oo nan exp log ln sin cos tan "
    "asin acos atan sinh cosh tanh Abs factorial binomial floor ceiling"
)
NAMESPACE: dict[str, Any] = {name: getattr(sympy, name) for name in NAMES.split()} | {"__builtins__": {}}
NUMERIC_TOLERANCE = 1e-6
REPLACEMENTS = (
    (r"\\left|\\right|\\!|\\,|\\;|\\:|\\displaystyle|\$", ""),
    (r"\\[dt]frac", r"\\frac"),
    (r"\^\s*\{?\\circ\}?|°", ""),
    (r"\\%|%", "/100"),
    (r"\\cdot|\\times", "*"),
    (r"\\div", "/"),
    (r"\\pi", "pi"),
    (r"\\infty", "oo"),
    (r"\\ln", "log"),
    (r"\\(sin|cos|tan|log|exp)", r"\1"),
)
THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")


def last_boxed(text: str) -> str | None:
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    opening = text.find("{", start)
    if opening < 0:
        return None
    depth = 0
    for index in range(opening, len(text)):
        depth += {"{": 1, "}": -1}.get(text[index], 0)
        if depth == 0:
            return text[opening + 1 : index]
    return None


def replace_command(text: str, command: str, arguments: int, template: str) -> str:
    """Rewrite `\\command{a}{b}` (nested braces allowed) with `template.format(a, b)`, innermost last."""
    while (start := text.find(command + "{")) >= 0:
        position, parts = start + len(command), []
        for _ in range(arguments):
            if position >= len(text) or text[position] != "{":
                return text
            depth, end = 0, position
            for end in range(position, len(text)):
                depth += {"{": 1, "}": -1}.get(text[end], 0)
                if depth == 0:
                    break
            parts.append(text[position + 1 : end])
            position = end + 1
        text = text[:start] + template.format(*parts) + text[position:]
    return text


def to_sympy_syntax(text: str) -> str:
    text = re.sub(r"\\(text|mathrm|textbf|mathbf)\{([^{}]*)\}", r"\2", text)
    for pattern, replacement in REPLACEMENTS:
        text = re.sub(pattern, replacement, text)
    text = re.sub(r"\\sqrt\s*(\d+|[A-Za-z])", r"\\sqrt{\1}", text)
    text = re.sub(r"\\frac\s*(\d)\s*(\d)", r"\\frac{\1}{\2}", text)
    text = re.sub(r"\\sqrt\[([^\]]*)\]\{", r"\\root{\1}{", text)
    text = replace_command(text, "\\root", 2, "(({1})**(1/({0})))")
    text = replace_command(text, "\\frac", 2, "(({0})/({1}))")
    text = replace_command(text, "\\sqrt", 1, "sqrt({0})")
    return text.replace("{", "(").replace("}", ")").replace("\\", "").strip().rstrip(".")


def final_answer(text: str) -> str:
    boxed = last_boxed(text)
    answer = THOUSANDS.sub("", boxed if boxed is not None else text)
    answer = re.sub(r"^\s*(the\s+)?(final\s+)?answer\s*(is|:)\s*", "", answer.strip(), flags=re.IGNORECASE)
    if re.fullmatch(r"\s*[A-Za-z]\w*\s*=[^=].*", answer):
        answer = answer.split("=", 1)[1]
    return answer.strip()


def split_top_level(text: str) -> list[str]:
    parts, depth, current = [], 0, ""
    for char in text:
        depth += 1 if char in "([{" else -1 if char in ")]}" else 0
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [*parts, current]


def to_expr(text: str) -> Any:
    syntax = to_sympy_syntax(text)
    if not SAFE_TEXT.fullmatch(syntax) or ATTRIBUTE.search(syntax):
        raise ValueError(f"not plain arithmetic: {syntax!r}")
    return parse_expr(syntax, local_dict={}, global_dict=dict(NAMESPACE), transformations=TRANSFORMATIONS)


def scalars_equal(answer: str, reference: str) -> bool:
    if to_sympy_syntax(answer).replace(" ", "") == to_sympy_syntax(reference).replace(" ", ""):
        return True
    try:
        a, b = to_expr(answer), to_expr(reference)
    except Exception:
        return False
    try:
        if sympy.simplify(a - b) == 0:
            return True
    except Exception:
        pass
    try:
        x, y = complex(sympy.N(a)), complex(sympy.N(b))
    except Exception:
        return False
    return abs(x - y) <= NUMERIC_TOLERANCE * max(1.0, abs(y))


def strip_brackets(text: str) -> tuple[str, str]:
    text = text.strip()
    for opening, closing in (("\\{", "\\}"), ("{", "}"), ("(", ")"), ("[", "]")):
        if text.startswith(opening) and text.endswith(closing) and "," in text:
            return opening, text[len(opening) : -len(closing)]
    return "", text


def equivalent(answer: str, reference: str) -> bool:
    answer_kind, answer_body = strip_brackets(answer)
    reference_kind, reference_body = strip_brackets(reference)
    answers, references = split_top_level(answer_body), split_top_level(reference_body)
    if len(answers) != len(references):
        return False
    if len(answers) == 1:
        return scalars_equal(answer, reference)
    if answer_kind in ("{", "\\{") and reference_kind in ("{", "\\{"):
        unmatched = list(references)
        for item in answers:
            match = next((other for other in unmatched if scalars_equal(item, other)), None)
            if match is None:
                return False
            unmatched.remove(match)
        return True
    return all(scalars_equal(a, b) for a, b in zip(answers, references, strict=True))


def main() -> None:
    args = json.load(sys.stdin)
    answer, reference = final_answer(args["answer"]), final_answer(args["reference"])
    same = bool(answer) and equivalent(answer, reference)
    print(json.dumps({"equivalent": same, "reward": 1.0 if same else 0.0, "answer": answer, "reference": reference}))


main()
