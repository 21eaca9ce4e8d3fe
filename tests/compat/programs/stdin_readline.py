import sys

input = sys.stdin.readline
t = int(input())
for case in range(1, t + 1):
    n, k = map(int, input().split())
    arr = list(map(int, input().split()))
    print(f"Case #{case}: {sorted(arr)[-k:]}")
print(repr(input()))
