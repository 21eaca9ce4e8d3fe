import sys

print("a", "b", sep="-", end="")
print(" no newline", end="")
sys.stderr.write("err without newline")
