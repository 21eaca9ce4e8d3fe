"""Tool `bash`: run the given shell command, answer its stdout, stderr and exit code."""

import json
import subprocess
import sys

args = json.load(sys.stdin)
done = subprocess.run(["/bin/bash", "-c", args["command"]], input=args.get("stdin", ""), capture_output=True, text=True)
print(json.dumps({"stdout": done.stdout, "stderr": done.stderr, "exit_code": done.returncode}))
