import os
import sys

sys.stdout.flush()
full = os.open("/dev/full", os.O_WRONLY)
os.dup2(full, 1)
print("cannot be written")
print("stderr still works", file=sys.stderr)
