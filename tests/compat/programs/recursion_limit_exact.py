import sys


def probe(n):
    try:
        return probe(n + 1)
    except RecursionError:
        return n


print("reachable depth", probe(1))
sys.setrecursionlimit(50)
print("reachable depth at 50", probe(1))
try:
    sys.setrecursionlimit(1)
except RecursionError as error:
    print("refused:", error)
