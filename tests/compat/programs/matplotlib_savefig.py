import os

import matplotlib.pyplot as plt
import numpy as np

x = np.linspace(0, 2 * np.pi, 100)
fig, ax = plt.subplots(figsize=(4, 3))
ax.plot(x, np.sin(x), label="sin")
ax.plot(x, np.cos(x), label="cos")
ax.legend()
ax.set_title("waves")
fig.savefig("plot.png", dpi=80)
print(os.path.exists("plot.png"), os.path.getsize("plot.png") > 1000)
print(plt.get_backend())
with open("plot.png", "rb") as f:
    print(f.read(8))
