import json
import os
from pathlib import Path

with open("numbers.txt", "w") as f:
    for i in range(10):
        f.write(f"{i * i}\n")
with open("numbers.txt") as f:
    print(sum(int(line) for line in f))
Path("data").mkdir()
Path("data/config.json").write_text(json.dumps({"a": 1, "b": [1, 2]}))
print(json.loads(Path("data/config.json").read_text()))
print(sorted(os.listdir(".")))
print(os.path.getsize("numbers.txt"))
os.remove("numbers.txt")
print(os.path.exists("numbers.txt"), os.getcwd())
