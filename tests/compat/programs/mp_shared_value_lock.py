from multiprocessing import Lock, Process, Value


def add(total, lock, n):
    for _ in range(n):
        with lock:
            total.value += 1


if __name__ == "__main__":
    total = Value("i", 0)
    lock = Lock()
    workers = [Process(target=add, args=(total, lock, 500)) for _ in range(4)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    print("total", total.value)
