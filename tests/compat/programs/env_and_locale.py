import locale
import os
import sys

print(os.environ.get("LANG"), os.environ.get("LC_ALL"), os.environ.get("PATH"))
print(locale.getpreferredencoding(False), sys.getfilesystemencoding(), sys.stdout.encoding, sys.stdout.errors)
print(os.environ.get("PYTHONUNBUFFERED"), os.environ.get("MPLBACKEND"))
print(os.path.expanduser("~") == os.getcwd())
print(sys.stdout.line_buffering, sys.stderr.line_buffering, sys.stdout.write_through)
