import sympy as sp

x, y = sp.symbols("x y")
print(sp.solve(x**2 - 5 * x + 6, x))
print(sp.simplify(sp.sin(x) ** 2 + sp.cos(x) ** 2))
print(sp.integrate(x * sp.exp(x), x))
print(sp.factorint(2**32 + 1))
print(sp.Rational(3, 4) + sp.Rational(1, 6))
print(sp.series(sp.cos(x), x, 0, 6))
