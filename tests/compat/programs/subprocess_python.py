import subprocess
import sys

done = subprocess.run(
    [sys.executable, "-c", "import sys; print(sum(map(int, sys.stdin.read().split())))"],
    input="1 2 3 4\n",
    capture_output=True,
    text=True,
)
print("child said", done.stdout.strip(), "exit", done.returncode)
failed = subprocess.run(["python3", "-c", "raise SystemExit('child failed')"], capture_output=True, text=True)
print("exit", failed.returncode, "stderr", repr(failed.stderr))
print(subprocess.check_output(["python3", "-c", "import sys; print(sys.argv[1:])", "a", "b c"], text=True), end="")
