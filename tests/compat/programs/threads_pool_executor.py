from concurrent.futures import ThreadPoolExecutor


def collatz_steps(n):
    steps = 0
    while n != 1:
        n = n // 2 if n % 2 == 0 else 3 * n + 1
        steps += 1
    return steps


with ThreadPoolExecutor(max_workers=8) as pool:
    results = list(pool.map(collatz_steps, range(1, 2001)))

print("max steps:", max(results), "at", results.index(max(results)) + 1)
print("total:", sum(results))
