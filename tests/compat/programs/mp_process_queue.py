import multiprocessing as mp


def producer(queue, start):
    for i in range(start, start + 5):
        queue.put(i * i)
    queue.put(None)


if __name__ == "__main__":
    queue = mp.Queue()
    procs = [mp.Process(target=producer, args=(queue, s)) for s in (0, 100)]
    for p in procs:
        p.start()
    done, values = 0, []
    while done < len(procs):
        item = queue.get()
        if item is None:
            done += 1
        else:
            values.append(item)
    for p in procs:
        p.join()
    print(sorted(values))
    print([p.exitcode for p in procs])
