import sys

print("partial output")
print("warning on stderr", file=sys.stderr)
sys.exit(3)
