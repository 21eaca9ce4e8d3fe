import sys

sys.stdout.buffer.write(b"ok \xff\xfe bytes\n")
sys.stdout.flush()
print("text after", "\udcff".encode("utf-8", "surrogateescape"))
