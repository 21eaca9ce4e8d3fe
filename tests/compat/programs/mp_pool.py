from multiprocessing import Pool


def square(x):
    return x * x


if __name__ == "__main__":
    with Pool(4) as pool:
        print(pool.map(square, range(20)))
        print(sum(pool.imap_unordered(square, range(1000))))
