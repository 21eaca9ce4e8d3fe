import sys

print("validating input")
sys.exit("error: expected 3 arguments, got 0")
