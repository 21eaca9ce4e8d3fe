import sys

data = sys.stdin.read()
print(repr(data), sys.stdin.isatty(), sys.stdout.isatty())
print(sys.stdin.readline() == "")
