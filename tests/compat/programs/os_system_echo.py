import os

print("python line printed before os.system, still buffered")
status = os.system("echo from the shell; exit 2")
print("os.system status", os.waitstatus_to_exitcode(status))
os.system("printf 'no newline from printf'")
