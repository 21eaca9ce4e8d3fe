import numpy as np

rng = np.random.default_rng(12345)
sample = rng.normal(size=1000)
print(round(float(sample.mean()), 10), round(float(sample.std()), 10))
print(rng.integers(0, 100, size=10))
np.random.seed(0)
print(np.random.rand(3))
print(np.random.permutation(10))
