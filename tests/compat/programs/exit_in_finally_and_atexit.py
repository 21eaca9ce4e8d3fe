import atexit
import sys


class Report:
    def __call__(self, label):
        print("atexit:", label)

    def __repr__(self):
        return "Report()"


class Broken:
    def __call__(self):
        raise RuntimeError("atexit handler failed")

    def __repr__(self):
        return "Broken()"


atexit.register(Report(), "registered first, runs last")
atexit.register(Broken())
atexit.register(Report(), "registered last, runs first")
atexit.register(lambda: print("file in atexit:", globals().get("__file__")))
try:
    sys.exit(2)
finally:
    print("finally runs before atexit")
