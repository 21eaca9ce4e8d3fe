import cmath
import math

print(math.comb(50, 25), math.perm(10, 3), math.gcd(462, 1071), math.lcm(4, 6, 10))
print(math.isqrt(10**20 + 1), math.factorial(20), math.prod(range(1, 8)))
print(math.pi, math.e, math.tau, math.inf, math.nan)
print(math.sqrt(2), math.log(1000, 10), math.log2(1024), math.hypot(3, 4), math.atan2(1, 1))
print(round(math.sin(math.pi / 6), 12), math.floor(-2.5), math.ceil(-2.5), round(2.5), round(3.5))
print(cmath.sqrt(-4), math.isclose(0.1 + 0.2, 0.3), f"{math.pi:.20f}", f"{1e22:,.2f}")
print(1 / 3, 2 / 3, 1e-7, 123456789.0 * 1000, float("1e400"), -0.0)
