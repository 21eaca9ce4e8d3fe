import os
import signal
import sys


def handler(signum, frame):
    print("got", signal.Signals(signum).name)
    sys.exit(4)


signal.signal(signal.SIGUSR1, handler)
os.kill(os.getpid(), signal.SIGUSR1)
print("unreachable")
