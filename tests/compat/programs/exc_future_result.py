from concurrent.futures import ThreadPoolExecutor, wait


def task(n):
    return 10 // (n - 3)


with ThreadPoolExecutor(4) as pool:
    futures = [pool.submit(task, n) for n in range(5)]
    wait(futures)
    for n, future in enumerate(futures):
        if n < 3:
            print(n, future.result())
    print(futures[3].result())
