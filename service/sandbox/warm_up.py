"""What a zygote runs once, after its preloads and before it freezes its heap, so that calls fork from
an interpreter whose libraries have been *used*, not just imported.

sympy builds much on first use (the parser, lazily imported submodules such as the simplification
and solver machinery, the printers, its caches), numpy a little (linalg, the array printer): a call
forked from an interpreter that only imported them pays that every time (~100 ms for a `simplify`).
Each call is a fresh fork of the warmed image, so what a cache holds is what this warm-up computed,
never another call's work; results are those of a cold run. Nothing here touches a global random
generator (calls reseed those anyway) or prints. Standard library and the preloaded modules only: the
zygote imports this inside the sandbox's own interpreter.
"""

from __future__ import annotations

import sys
from collections.abc import Callable


def numpy_workload() -> None:
    import numpy as np

    a = np.arange(12, dtype=float).reshape(3, 4)
    b = a @ a.T + np.eye(3)
    np.linalg.solve(b, np.ones(3))
    np.linalg.det(b)
    np.linalg.inv(b)
    np.linalg.eigvals(b)
    np.sort(a, axis=None)
    np.sqrt(a).sum()
    int(np.arange(10).sum())
    a.mean(axis=0).std()
    np.random.default_rng(0).random(3)
    str(a)
    repr(np.float64(0.5))


def sympy_workload() -> None:
    import sympy as sp
    from sympy.parsing.sympy_parser import parse_expr, standard_transformations

    x, y = sp.symbols("x y")
    str(sp.simplify("x+x"))
    str(sp.simplify(sp.sin(x) ** 2 + sp.cos(x) ** 2))
    str(sp.factor("x**2-1"))
    str(sp.expand((x + 1) ** 3))
    sp.solve(x**2 - 4, x)
    sp.solve([x + y - 2, x - y], [x, y])
    parse_expr("2*x + 3", transformations=standard_transformations)
    sp.sympify("sqrt(8)/2")
    sp.latex(sp.Integral(sp.sqrt(x), x) / 2)
    sp.integrate(x**2 + sp.exp(x), x)
    sp.diff(sp.sin(x) * x, x)
    sp.limit(sp.sin(x) / x, x, 0)
    sp.nsimplify(0.5)
    sp.N(sp.pi, 20)
    sp.Rational(1, 3) + sp.Rational(1, 6)
    sp.Matrix([[1, 2], [3, 4]]).det()
    sp.isprime(97)
    sp.factorint(360)
    sp.pretty(x**2 / 2)


WORKLOADS: dict[str, Callable[[], None]] = {"numpy": numpy_workload, "sympy": sympy_workload}


def warm_up(preloaded: list[str]) -> None:
    """Use each preloaded library that has a workload; a failure only costs the warmth."""
    for module in preloaded:
        workload = WORKLOADS.get(module)
        if workload is None or module not in sys.modules:
            continue
        try:
            workload()
        except Exception as failed:  # a library that fails to warm still serves calls
            print(f"zygote: warming {module} failed: {failed!r}", file=sys.stderr)
