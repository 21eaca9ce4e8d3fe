import numpy as np

a = np.array([[4.0, 1.0, 2.0], [1.0, 3.0, 0.5], [2.0, 0.5, 5.0]])
b = np.array([1.0, 2.0, 3.0])
x = np.linalg.solve(a, b)
print(np.round(x, 6))
print(np.allclose(a @ x, b))
values = np.linalg.eigvalsh(a)
print(np.round(values, 6))
print(np.arange(12).reshape(3, 4).T.sum(axis=1))
print(np.float64(1.0) / 3, np.int64(2) ** 40)
