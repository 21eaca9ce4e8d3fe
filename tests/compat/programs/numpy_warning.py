import numpy as np

values = np.array([1.0, 0.0, -1.0])
print(values / 0)
print(np.log(values))
with np.errstate(divide="ignore"):
    print(np.float64(1.0) / 0)
