import sys


def hook(kind, value, tb):
    print(f"custom hook: {kind.__name__}: {value}", file=sys.stderr)
    print("exc_info inside hook:", sys.exc_info()[0], file=sys.stderr)


sys.excepthook = hook
raise LookupError("handled by the hook")
