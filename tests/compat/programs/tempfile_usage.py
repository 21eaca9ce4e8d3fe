import os
import tempfile

with tempfile.NamedTemporaryFile("w+", suffix=".txt") as f:
    f.write("hello temp\n")
    f.flush()
    f.seek(0)
    print(f.read().strip(), f.name.endswith(".txt"), os.path.dirname(f.name) == tempfile.gettempdir())
with tempfile.TemporaryDirectory() as d:
    path = os.path.join(d, "x.bin")
    with open(path, "wb") as f:
        f.write(bytes(range(256)))
    print(os.path.getsize(path))
print(os.path.exists(d))
fd, name = tempfile.mkstemp()
os.write(fd, b"abc")
os.close(fd)
print(open(name).read())
os.unlink(name)
