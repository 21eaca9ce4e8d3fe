import sys

for line in sys.stdin:
    print(repr(line))
print(sys.stdin.encoding, sys.stdin.errors)
