from functools import cache, lru_cache, partial, reduce


@lru_cache(maxsize=None)
def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


@cache
def grid_paths(r, c):
    if r == 0 or c == 0:
        return 1
    return grid_paths(r - 1, c) + grid_paths(r, c - 1)


print(fib(200))
print(fib.cache_info())
print(grid_paths(16, 16))
print(reduce(lambda a, b: a * b, range(1, 11)), partial(int, base=2)("101101"))
