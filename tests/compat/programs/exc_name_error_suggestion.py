import collections

counter = collections.Counter("mississippi")
print(counter.most_common(2))
print(countr["s"])
