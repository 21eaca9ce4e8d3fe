import sys
import threading
from functools import cache

sys.setrecursionlimit(10**6)
threading.stack_size(2**27)


@cache
def paths(n):
    if n <= 1:
        return 1
    return (paths(n - 1) + paths(n - 2)) % 1_000_000_007


def main():
    print(paths(20000))


thread = threading.Thread(target=main)
thread.start()
thread.join()
