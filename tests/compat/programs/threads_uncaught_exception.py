import threading


def worker(n):
    if n == 2:
        raise ValueError(f"bad item {n}")
    print(f"worker {n} ok", flush=True)


for n in range(4):
    t = threading.Thread(target=worker, args=(n,), name=f"worker-{n}")
    t.start()
    t.join()
print("main thread continues")
