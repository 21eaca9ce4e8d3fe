import sys

raw = sys.stdin.buffer.read()
print(len(raw), raw[:10], raw.count(b"\n"))
print(sum(map(int, raw.split())))
