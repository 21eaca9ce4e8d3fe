import subprocess

print(
    subprocess.run(["bash", "-c", "echo hello from bash; echo $((6 * 7))"], capture_output=True, text=True).stdout,
    end="",
)
pipeline = subprocess.run("seq 1 100 | awk '{s += $1} END {print s}'", shell=True, capture_output=True, text=True)
print("sum", pipeline.stdout.strip())
print("false exits", subprocess.run(["bash", "-c", "exit 3"]).returncode)
subprocess.run(["echo", "inherited stdout"], check=True)
