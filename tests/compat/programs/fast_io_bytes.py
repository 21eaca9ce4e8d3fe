import sys

input = sys.stdin.buffer.readline
n = int(input())
rows = [list(map(int, input().split())) for _ in range(n)]
out = []
for row in rows:
    out.append(" ".join(str(x * 2) for x in row))
sys.stdout.write("\n".join(out) + "\n")
print(repr(input()))
