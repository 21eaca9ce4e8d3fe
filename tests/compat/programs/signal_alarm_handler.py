import signal


class Deadline(Exception):
    pass


def on_alarm(signum, frame):
    raise Deadline(f"signal {signum}")


signal.signal(signal.SIGALRM, on_alarm)
signal.alarm(1)
count = 0
try:
    while True:
        count += 1
except Deadline as exc:
    print("interrupted by", exc)
print("alarm handler ran, counted", count > 0)
