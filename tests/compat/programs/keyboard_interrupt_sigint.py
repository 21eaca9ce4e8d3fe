import os
import signal

try:
    os.kill(os.getpid(), signal.SIGINT)
    signal.pause()
except KeyboardInterrupt:
    print("caught the first ^C")
os.kill(os.getpid(), signal.SIGINT)
print("unreachable")
