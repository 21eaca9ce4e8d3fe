import threading
import time


def slow():
    time.sleep(0.2)
    print("background thread finished after main")


threading.Thread(target=slow).start()
print("main module done")
