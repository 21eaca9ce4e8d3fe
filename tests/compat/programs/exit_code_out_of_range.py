import sys

print("exit 300 is 300 % 256")
sys.exit(300)
