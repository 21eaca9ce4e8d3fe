total = 0
lines = 0
while True:
    try:
        line = input()
    except EOFError:
        break
    lines += 1
    total += sum(int(x) for x in line.split())
print(lines, total)
