import os

print("before fork", flush=True)
pid = os.fork()
if pid == 0:
    print("in child")
    os._exit(7)
_, status = os.waitpid(pid, 0)
print("child exit code", os.waitstatus_to_exitcode(status))
