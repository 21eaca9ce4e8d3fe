import os
import sys

print("buffered, lost by os._exit")
sys.stderr.write("stderr survives\n")
os._exit(4)
