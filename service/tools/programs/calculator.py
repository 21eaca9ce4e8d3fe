"""Tool `calculator`: evaluate an arithmetic expression by walking its syntax tree, never with eval.

Only numbers, + - * / // % **, parentheses, and a fixed set of math functions and constants are
allowed; huge powers and factorials are refused before they are computed.
"""

import ast
import json
import math
import operator
import sys
from collections.abc import Callable
from typing import Any

BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
UNARY: dict[type[ast.unaryop], Callable[[Any], Any]] = {ast.UAdd: operator.pos, ast.USub: operator.neg}
FUNCTIONS: dict[str, Callable[..., Any]] = {
    name: getattr(math, name)
    for name in (
        "sqrt",
        "exp",
        "log",
        "log2",
        "log10",
        "sin",
        "cos",
        "tan",
        "asin",
        "acos",
        "atan",
        "atan2",
        "sinh",
        "cosh",
        "tanh",
        "floor",
        "ceil",
        "factorial",
        "gcd",
        "lcm",
        "comb",
        "perm",
        "hypot",
        "degrees",
        "radians",
    )
}
FUNCTIONS.update({"abs": abs, "round": round, "min": min, "max": max})
CONSTANTS = {"pi": math.pi, "e": math.e, "tau": math.tau, "inf": math.inf}
MAX_EXPONENT = 10_000
MAX_FACTORIAL = 5_000


class Refused(ValueError):
    pass


def evaluate(node: ast.AST) -> Any:
    if isinstance(node, ast.Expression):
        return evaluate(node.body)
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        return node.value
    if isinstance(node, ast.Name) and node.id in CONSTANTS:
        return CONSTANTS[node.id]
    if isinstance(node, ast.UnaryOp) and type(node.op) in UNARY:
        return UNARY[type(node.op)](evaluate(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in BINARY:
        left, right = evaluate(node.left), evaluate(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > MAX_EXPONENT and abs(left) > 1:
            raise Refused(f"exponent {right} is too large")
        return BINARY[type(node.op)](left, right)
    if (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in FUNCTIONS
        and not node.keywords
    ):
        values = [evaluate(arg) for arg in node.args]
        if node.func.id == "factorial" and values and values[0] > MAX_FACTORIAL:
            raise Refused(f"factorial of {values[0]} is too large")
        return FUNCTIONS[node.func.id](*values)
    raise Refused(f"{ast.unparse(node)!r} is not allowed")


def as_json(value: Any) -> Any:
    """Numbers JSON can carry exactly as numbers; others (huge ints, inf, nan) as strings."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer() and abs(value) < 2**53:
        return int(value)
    if (isinstance(value, int) and abs(value) < 2**63) or (isinstance(value, float) and math.isfinite(value)):
        return value
    return str(value)


def main() -> None:
    expression = json.load(sys.stdin)["expression"]
    try:
        value = evaluate(ast.parse(expression.replace("^", "**"), mode="eval"))
    except (Refused, SyntaxError, ArithmeticError, ValueError, TypeError) as exc:
        print(json.dumps({"error": f"{type(exc).__name__}: {exc}"}))
        sys.exit(1)
    print(json.dumps({"result": as_json(value)}))


main()
