import subprocess
import sys

print("parent before", flush=True)
subprocess.run([sys.executable, "-c", "print('child line 1'); print('child line 2')"])
print("parent after")
subprocess.run([sys.executable, "-c", "import os; print('child never flushes'); os._exit(0)"])
print("parent end")
