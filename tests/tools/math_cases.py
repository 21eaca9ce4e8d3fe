"""Labelled answer/reference pairs for the `math_verify` tool, written here from the rules Math-Verify
documents (its README and the docstrings of `parse`, `verify` and the extraction configs): extraction from
LaTeX and plain text, \\boxed{} answers, fractions, percents, units, sets, intervals, matrices, equations,
text answers, thousands separators, strict mode and float rounding. `expected` is the label: equivalent
or not. Each case is (answer, reference, expected) plus the tool options it is called with.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Case:
    topic: str
    answer: str
    reference: str
    expected: bool
    options: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.topic}:{self.answer[:40]}|{self.reference[:30]}"


def cases(topic: str, rows: list[tuple[str, str, bool]], **options: Any) -> list[Case]:
    return [Case(topic, answer, reference, expected, options) for answer, reference, expected in rows]


INTEGERS = cases(
    "integer",
    [
        ("The answer is $\\boxed{42}$.", "42", True),
        ("\\boxed{42}", "$42$", True),
        ("So we get $\\boxed{41}$.", "42", False),
        ("Therefore, the final answer is $7$.", "7", True),
        ("Therefore, the final answer is $8$.", "7", False),
        ("The answer is -3.", "$-3$", True),
        ("The answer is 3.", "$-3$", False),
        ("$\\boxed{0}$", "0", True),
        ("$\\boxed{007}$", "7", True),
        ("\\boxed{10^{3}}", "1000", True),
        ("\\boxed{2^{10}}", "1024", True),
        ("\\boxed{2^{10}}", "1000", False),
        ("\\boxed{3!}", "6", True),
        ("\\boxed{\\binom{5}{2}}", "10", True),
        ("\\boxed{\\binom{5}{2}}", "$20$", False),
        ("First we find 12, then 15. The final answer is $\\boxed{15}$", "15", True),
        ("First we find 12, then 15. The final answer is $\\boxed{15}$", "12", False),
        ("$\\boxed{5}$ and then $\\boxed{6}$", "6", True),
        ("\\boxed{\\sqrt{16}}", "4", True),
        ("\\boxed{\\sqrt[3]{27}}", "3", True),
    ],
)

FRACTIONS = cases(
    "fraction",
    [
        ("The answer is $\\boxed{\\frac{1}{2}}$", "$\\frac{1}{2}$", True),
        ("\\boxed{\\dfrac{1}{2}}", "$\\frac12$", True),
        ("\\boxed{\\tfrac{3}{4}}", "$\\frac{3}{4}$", True),
        ("\\boxed{0.5}", "$\\frac{1}{2}$", True),
        ("\\boxed{0.25}", "$\\frac{1}{2}$", False),
        ("The answer is 1/2", "$\\frac{1}{2}$", True),
        ("The answer is 2/4", "$\\frac{1}{2}$", True),
        ("\\boxed{\\frac{2}{3}}", "$\\frac{3}{2}$", False),
        ("\\boxed{\\frac{-1}{3}}", "$-\\frac{1}{3}$", True),
        ("\\boxed{\\frac{1}{3}}", "$-\\frac{1}{3}$", False),
        ("\\boxed{\\frac{6}{8}}", "$\\frac{3}{4}$", True),
        ("\\boxed{0.333333}", "$\\frac{1}{3}$", True),
        ("\\boxed{0.33}", "$\\frac{1}{3}$", False),
        ("\\boxed{\\frac{22}{7}}", "$\\pi$", False),
        ("\\boxed{\\frac{\\sqrt{3}}{2}}", "$\\frac{\\sqrt3}{2}$", True),
        ("\\boxed{\\frac{1}{\\sqrt{2}}}", "$\\frac{\\sqrt{2}}{2}$", True),
        ("\\boxed{\\frac{1}{\\sqrt{3}}}", "$\\frac{\\sqrt{2}}{2}$", False),
        ("\\boxed{1\\frac{1}{2}}", "$\\frac{3}{2}$", True),
        ("\\boxed{\\frac{9}{4}}", "$2.25$", True),
        ("\\boxed{\\frac{a}{b}}", "$\\frac{a}{b}$", True),
        ("\\boxed{\\frac{b}{a}}", "$\\frac{a}{b}$", False),
        ("\\boxed{\\frac{x+1}{2}}", "$\\frac{1}{2}x+\\frac12$", True),
    ],
)

DECIMALS = cases(
    "decimal",
    [
        ("\\boxed{3.14159}", "$3.14159$", True),
        ("\\boxed{3.1416}", "$3.14159$", False),
        ("\\boxed{2.50}", "$2.5$", True),
        ("\\boxed{.5}", "$0.5$", True),
        ("\\boxed{1.0}", "1", True),
        ("\\boxed{1.0000001}", "$1.0$", True),
        ("\\boxed{1.00001}", "1", False),
        ("\\boxed{\\pi}", "$3.141593$", True),
        ("\\boxed{\\pi}", "$3.14$", False),
        ("\\boxed{e}", "$2.718282$", True),
        ("The answer is 12.5", "$12.5$", True),
        ("The answer is 12.6", "$12.5$", False),
    ],
)

ROUNDING = [
    *cases("rounding", [("\\boxed{3.14}", "$\\pi$", True), ("\\boxed{3.15}", "$\\pi$", False)], float_rounding=2),
    *cases("rounding", [("\\boxed{3.14}", "$\\pi$", False)], float_rounding=6),
    *cases("rounding", [("\\boxed{0.3333}", "$\\frac{1}{3}$", True)], float_rounding=4),
    *cases("rounding", [("\\boxed{0.3333}", "$\\frac{1}{3}$", False)], float_rounding=5),
    *cases("rounding", [("\\boxed{1.4142}", "$\\sqrt{2}$", True)], float_rounding=4),
]

PERCENTS = cases(
    "percent",
    [
        ("\\boxed{50\\%}", "$50\\%$", True),
        ("\\boxed{50\\%}", "$50$", True),
        ("\\boxed{50}", "$50\\%$", True),
        ("\\boxed{25\\%}", "$50\\%$", False),
        ("\\boxed{12.5\\%}", "$12.5\\%$", True),
        ("The answer is 30%", "$30\\%$", True),
        ("The answer is 30 percent", "$30\\%$", True),
        ("The answer is 40%", "$30\\%$", False),
        ("\\boxed{100\\%}", "$100$", True),
    ],
)

THOUSANDS = cases(
    "thousands",
    [
        ("The answer is 1,000", "1000", True),
        ("The answer is 1,000,000", "$1000000$", True),
        ("The answer is 12,345", "$12345$", True),
        ("The answer is 12,345", "$12346$", False),
        ("\\boxed{1,234,567}", "$1234567$", True),
        ("\\boxed{1,234}", "$1234$", True),
        ("\\boxed{1{,}234}", "$1234$", True),
        ("\\boxed{10,000}", "$10000$", True),
        ("\\boxed{10,000}", "$1000$", False),
        ("The answer is 1 000 000", "$1000000$", True),
        ("The answer is 2,500.75", "$2500.75$", True),
        ("\\boxed{\\$1,250}", "$1250$", True),
    ],
)

UNITS = cases(
    "units",
    [
        ("\\boxed{5\\text{ cm}}", "$5$", True),
        ("\\boxed{5 \\text{ meters}}", "$5$", True),
        ("\\boxed{6\\text{ cm}}", "$5$", False),
        ("\\boxed{12\\ \\text{dollars}}", "12", True),
        ("\\boxed{\\$12}", "$12$", True),
        ("\\boxed{30^\\circ}", "$30$", True),
        ("\\boxed{30^{\\circ}}", "$30^\\circ$", True),
        ("\\boxed{45^\\circ}", "$30^\\circ$", False),
        ("\\boxed{5\\mbox{ km}}", "$5$", True),
        ("\\boxed{3 \\text{ hours}}", "$3$", True),
        ("\\boxed{100 \\text{ square units}}", "100", True),
        ("\\boxed{8\\,\\text{m}^2}", "$8$", True),
    ],
)

EXPRESSIONS = cases(
    "expression",
    [
        ("\\boxed{x^2+2x+1}", "$(x+1)^2$", True),
        ("\\boxed{x^2+1}", "$(x+1)^2$", False),
        ("\\boxed{2\\sqrt{2}}", "$\\sqrt{8}$", True),
        ("\\boxed{3\\sqrt{2}}", "$\\sqrt{8}$", False),
        ("\\boxed{2\\pi}", "$2\\pi$", True),
        ("\\boxed{\\pi r^2}", "$r^2\\pi$", True),
        ("\\boxed{\\sin^2 x + \\cos^2 x}", "$1$", True),
        ("\\boxed{\\log_2 8}", "$3$", True),
        ("\\boxed{\\ln(e^2)}", "$2$", True),
        ("\\boxed{\\frac{d}{dx}}", "$5$", False),
        ("\\boxed{(a+b)(a-b)}", "$a^2-b^2$", True),
        ("\\boxed{a^2+b^2}", "$a^2-b^2$", False),
        ("\\boxed{2x}", "$2y$", False),
        ("\\boxed{3+2i}", "$3+2i$", True),
        ("\\boxed{3-2i}", "$3+2i$", False),
        ("\\boxed{\\infty}", "$\\infty$", True),
        ("\\boxed{-\\infty}", "$\\infty$", False),
        ("\\boxed{\\sqrt{2}+\\sqrt{3}}", "$\\sqrt{3}+\\sqrt{2}$", True),
        ("\\boxed{\\tan\\frac{\\pi}{4}}", "1", True),
    ],
)

VARIABLES = [
    *cases("strict", [("\\boxed{2y+1}", "$2x+1$", False), ("\\boxed{a+b}", "$x+y$", False)], strict=True),
    *cases("lenient", [("\\boxed{2y+1}", "$2x+1$", True), ("\\boxed{2y+2}", "$2x+1$", False)], strict=False),
]

EQUATIONS = cases(
    "equation",
    [
        ("\\boxed{x=5}", "$5$", True),
        ("\\boxed{x = 5}", "$x=5$", True),
        ("\\boxed{x=6}", "$x=5$", False),
        ("\\boxed{5}", "$x=5$", True),
        ("\\boxed{y=2x+3}", "$y=2x+3$", True),
        ("\\boxed{y=3+2x}", "$y=2x+3$", True),
        ("\\boxed{y=2x-3}", "$y=2x+3$", False),
        ("\\boxed{2x+3}", "$y=2x+3$", True),
        ("\\boxed{x^2+y^2=1}", "$x^2+y^2=1$", True),
        ("\\boxed{x^2+y^2=4}", "$x^2+y^2=1$", False),
        ("\\boxed{x > 3}", "$x > 3$", True),
        ("\\boxed{3 < x}", "$x > 3$", True),
        ("\\boxed{x \\geq 3}", "$x > 3$", False),
        ("\\boxed{x=2, y=3}", "$x=2, y=3$", True),
        ("\\boxed{x=3, y=2}", "$x=2, y=3$", False),
    ],
)

SETS = cases(
    "set",
    [
        ("\\boxed{\\{1, 2, 3\\}}", "$\\{1,2,3\\}$", True),
        ("\\boxed{\\{3, 2, 1\\}}", "$\\{1,2,3\\}$", True),
        ("\\boxed{\\{1, 2\\}}", "$\\{1,2,3\\}$", False),
        ("\\boxed{1, 2, 3}", "$\\{1,2,3\\}$", True),
        ("\\boxed{3, 2, 1}", "$1,2,3$", True),
        ("\\boxed{1, 2, 4}", "$1,2,3$", False),
        ("\\boxed{x=1, x=2}", "$1, 2$", True),
        ("\\boxed{\\{\\frac12, \\sqrt{4}\\}}", "$\\{0.5, 2\\}$", True),
        ("\\boxed{\\emptyset}", "$\\emptyset$", True),
        ("\\boxed{\\{1\\}}", "$\\emptyset$", False),
        ("\\boxed{\\{-1, 1\\}}", "$\\pm 1$", True),
        ("\\boxed{\\{a, b\\}}", "$\\{b, a\\}$", True),
    ],
)

TUPLES = [
    *cases(
        "tuple",
        [
            ("\\boxed{(1, 2)}", "$(1,2)$", True),
            ("\\boxed{(2, 1)}", "$(1,2)$", False),
            ("\\boxed{(1, 2, 3)}", "$(1,2)$", False),
            ("\\boxed{(\\frac{1}{2}, 3)}", "$(0.5, 3)$", True),
        ],
    ),
    # Not symmetric: a tuple reference wants that order, a set reference takes its elements in any brackets.
    *cases(
        "tuple_vs_set", [("\\boxed{\\{3, 2, 1\\}}", "$(1,2,3)$", False), ("\\boxed{(3,2,1)}", "$\\{1,2,3\\}$", True)]
    ),
    *cases("tuple_vs_set", [("\\boxed{\\{3, 2, 1\\}}", "$(1,2,3)$", False)], strict=False),
]

INTERVALS = cases(
    "interval",
    [
        ("\\boxed{(0, 1)}", "$(0,1)$", True),
        ("\\boxed{[0, 1]}", "$[0,1]$", True),
        ("\\boxed{[0, 1)}", "$[0,1)$", True),
        ("\\boxed{(0, 1]}", "$[0,1)$", False),
        ("\\boxed{[0, 1]}", "$(0,1)$", False),
        ("\\boxed{(-\\infty, 2)}", "$(-\\infty, 2)$", True),
        ("\\boxed{(-\\infty, 2]}", "$(-\\infty, 2)$", False),
        ("\\boxed{(-\\infty, 0) \\cup (1, \\infty)}", "$(-\\infty,0)\\cup(1,\\infty)$", True),
        ("\\boxed{(1, \\infty) \\cup (-\\infty, 0)}", "$(-\\infty,0)\\cup(1,\\infty)$", True),
        ("\\boxed{(-\\infty, 0] \\cup (1, \\infty)}", "$(-\\infty,0)\\cup(1,\\infty)$", False),
        ("\\boxed{[2, 5]}", "$[2, 5]$", True),
        ("\\boxed{[2, 6]}", "$[2, 5]$", False),
        ("\\boxed{(\\frac{1}{2}, 3]}", "$(0.5, 3]$", True),
        ("\\boxed{\\mathbb{R}}", "$(-\\infty, \\infty)$", True),
    ],
)

RELATION_SETS = [
    *cases("set_relation", [("\\boxed{(1, 2)}", "$1 < x < 2$", True)]),
    *cases("set_relation", [("\\boxed{1 < x < 2}", "$(1, 2)$", False)]),
    *cases("set_relation", [("\\boxed{1 < x < 2}", "$(1, 2)$", True)], allow_set_relation_comp=True),
]

MATRICES = cases(
    "matrix",
    [
        ("\\boxed{\\begin{pmatrix}1 & 2\\\\ 3 & 4\\end{pmatrix}}", "$\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}$", True),
        ("\\boxed{\\begin{bmatrix}1 & 2\\\\ 3 & 4\\end{bmatrix}}", "$\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}$", True),
        ("\\boxed{\\begin{pmatrix}1 & 2\\\\ 3 & 4\\end{pmatrix}}", "$\\begin{bmatrix}1&2\\\\3&4\\end{bmatrix}$", True),
        ("\\boxed{\\begin{bmatrix}1 & 3\\\\ 2 & 4\\end{bmatrix}}", "$\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}$", False),
        (
            "\\boxed{\\begin{pmatrix}\\frac12 & 0\\\\ 0 & 1\\end{pmatrix}}",
            "$\\begin{pmatrix}0.5&0\\\\0&1\\end{pmatrix}$",
            True,
        ),
        ("\\boxed{\\begin{pmatrix}1 \\\\ 2 \\\\ 3\\end{pmatrix}}", "$\\begin{pmatrix}1\\\\2\\\\3\\end{pmatrix}$", True),
        (
            "\\boxed{\\begin{pmatrix}1 \\\\ 2 \\\\ 4\\end{pmatrix}}",
            "$\\begin{pmatrix}1\\\\2\\\\3\\end{pmatrix}$",
            False,
        ),
        ("\\boxed{\\begin{pmatrix}1 & 2 & 3\\end{pmatrix}}", "$\\begin{pmatrix}1\\\\2\\\\3\\end{pmatrix}$", False),
        ("\\boxed{\\begin{pmatrix}2 & 0\\\\ 0 & 2\\end{pmatrix}}", "$2\\begin{pmatrix}1&0\\\\0&1\\end{pmatrix}$", True),
        ("\\boxed{\\begin{pmatrix}x & 1\\\\ 0 & x\\end{pmatrix}}", "$\\begin{bmatrix}x&1\\\\0&x\\end{bmatrix}$", True),
        ("\\boxed{\\begin{vmatrix}1 & 2\\\\ 3 & 4\\end{vmatrix}}", "$-2$", True),
        ("\\boxed{\\begin{bmatrix}1 & 2\\\\ 3 & 5\\end{bmatrix}}", "$\\begin{bmatrix}1&2\\\\3&4\\end{bmatrix}$", False),
    ],
)

TEXT = cases(
    "text",
    [
        ("\\boxed{\\text{yes}}", "$\\text{yes}$", True),
        ("\\boxed{\\text{no}}", "$\\text{yes}$", False),
        ("\\boxed{\\text{Monday}}", "$\\text{Monday}$", True),
        ("\\boxed{\\text{Tuesday}}", "$\\text{Monday}$", False),
        ("\\boxed{\\text{(C)}}", "$\\text{(C)}$", True),
        ("\\boxed{\\textbf{odd}}", "$\\text{odd}$", True),
        ("\\boxed{\\text{even}}", "$\\text{odd}$", False),
        ("\\boxed{\\text{east}}", "$\\text{east}$", True),
    ],
)

CHOICES = cases(
    "choice",
    [
        ("The answer is B.", "B", True),
        ("The answer is C.", "B", False),
        ("**Answer:** D", "D", True),
        ("Final answer is A", "A", True),
        ("I think it's (E) maybe; answer: E", "E", True),
        ("Answer: A", "E", False),
    ],
    answer_extraction=[{"type": "string", "strings": ["A", "B", "C", "D", "E"]}],
    reference_extraction=[{"type": "string", "strings": ["A", "B", "C", "D", "E"]}],
)

EXTRACTION = [
    # By default "The final answer is ... I hope" comes before \\boxed{}; boxed_match_priority 0 puts boxed first.
    *cases(
        "extraction_default",
        [
            ("The final answer is $3$. I hope it is correct. Check: \\boxed{4}", "3", True),
            ("Final answer is $3$. Check: \\boxed{4}", "4", True),
            ("The answer is: $x=2$", "2", True),
            ("no number here", "2", False),
            ("", "2", False),
        ],
    ),
    *cases(
        "extraction_boxed_first",
        [
            ("The final answer is $3$. I hope it is correct. Check: \\boxed{4}", "4", True),
            ("The final answer is $3$. I hope it is correct. Check: \\boxed{4}", "3", False),
        ],
        answer_extraction=[{"type": "latex", "boxed_match_priority": 0}, {"type": "expr"}],
    ),
    *cases(
        "extraction_latex_only",
        [("The answer is 42", "42", False), ("The answer is $42$", "42", True)],
        answer_extraction=[{"type": "latex"}],
    ),
    *cases(
        "extraction_expr_only",
        [("The answer is 42", "42", True), ("The answer is \\boxed{\\frac{1}{2}}", "0.5", False)],
        answer_extraction=[{"type": "expr"}],
    ),
    *cases(
        "extraction_anchor",
        [("The value is 42", "42", False), ("Final answer: 42", "42", True)],
        answer_extraction=[{"type": "expr", "try_extract_without_anchor": False}],
    ),
]

ALL_CASES: list[Case] = [
    *INTEGERS,
    *FRACTIONS,
    *DECIMALS,
    *ROUNDING,
    *PERCENTS,
    *THOUSANDS,
    *UNITS,
    *EXPRESSIONS,
    *VARIABLES,
    *EQUATIONS,
    *SETS,
    *TUPLES,
    *INTERVALS,
    *RELATION_SETS,
    *MATRICES,
    *TEXT,
    *CHOICES,
    *EXTRACTION,
]
