import multiprocessing as mp


def describe(n):
    return f"{__name__}: {n} -> {n ** 3}"


if __name__ == "__main__":
    ctx = mp.get_context("spawn")
    with ctx.Pool(2) as pool:
        for line in pool.map(describe, range(4)):
            print(line)
    print("parent is", __name__)
