import sys

data = sys.stdin.read().split()
n = int(data[0])
values = list(map(int, data[1 : n + 1]))
print(n, sorted(values), sum(values))
