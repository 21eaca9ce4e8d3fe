"""Tool `python`: run the given Python code, answer its stdout, stderr and exit code."""

import json
import subprocess
import sys

args = json.load(sys.stdin)
done = subprocess.run(
    [sys.executable, "-I", "-B", "-c", args["code"]], input=args.get("stdin", ""), capture_output=True, text=True
)
print(json.dumps({"stdout": done.stdout, "stderr": done.stderr, "exit_code": done.returncode}))
