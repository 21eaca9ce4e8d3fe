import numpy as np
from scipy import integrate, optimize, stats

result = optimize.minimize(lambda v: (v[0] - 3) ** 2 + (v[1] + 1) ** 2 + 1, x0=[0.0, 0.0], method="BFGS")
print(np.round(result.x, 4), round(result.fun, 6))
root = optimize.brentq(lambda x: x**3 - 2 * x - 5, 2, 3)
print(round(root, 10))
area, _ = integrate.quad(np.sin, 0, np.pi)
print(round(area, 10))
print(round(stats.norm.cdf(1.96), 6))
