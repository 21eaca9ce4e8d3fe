import fileinput

for line in fileinput.input():
    print(fileinput.lineno(), line.rstrip("\n")[::-1])
