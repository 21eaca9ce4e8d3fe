import os
import sys

print("printed once, but still in the buffer at fork")
sys.stderr.write("stderr is line-buffered\n")
pid = os.fork()
if pid == 0:
    print("child")
    sys.exit(0)
os.waitpid(pid, 0)
print("parent")
