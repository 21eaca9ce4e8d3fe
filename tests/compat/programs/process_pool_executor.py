import math
from concurrent.futures import ProcessPoolExecutor


def is_prime(n):
    if n < 2:
        return False
    return all(n % d for d in range(2, math.isqrt(n) + 1))


if __name__ == "__main__":
    numbers = range(10_000, 10_400)
    with ProcessPoolExecutor(max_workers=2) as pool:
        flags = list(pool.map(is_prime, numbers, chunksize=50))
    primes = [n for n, prime in zip(numbers, flags) if prime]
    print(len(primes), primes[:5], primes[-3:])
