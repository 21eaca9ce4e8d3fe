import threading

counter = 0
lock = threading.Lock()
results = [0] * 16


def work(index):
    global counter
    local = 0
    for i in range(2000):
        local += i * index
        with lock:
            counter += 1
    results[index] = local


threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print("counter", counter)
print("results", results)
print("alive", threading.active_count())
