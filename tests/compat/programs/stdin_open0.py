data = open(0).read().split()
print(len(data), max(map(int, data)))
