import sys

line = "x" * 1023 + "\n"
for _ in range(1024):
    sys.stdout.write(line)
print("done", file=sys.stderr)
