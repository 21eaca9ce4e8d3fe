import sys
import time

for i in range(0, 101, 25):
    print(f"\rprogress {i:3d}%", end="", flush=True)
    time.sleep(0.01)
print()
for i in range(3):
    sys.stderr.write(f"\rstep {i}")
sys.stderr.write("\n")
