import itertools as it

print(list(it.permutations("abc", 2)))
print(list(it.combinations(range(5), 3))[:4])
print(list(it.accumulate([1, 2, 3, 4, 5], lambda a, b: a * b)))
print([(k, len(list(g))) for k, g in it.groupby("aaabbcaa")])
print(list(it.islice(it.count(10, 5), 4)), list(it.chain.from_iterable([[1], [2, 3]])))
print(sum(1 for _ in it.product(range(3), repeat=4)), list(it.pairwise("abcd")))
print(list(it.zip_longest("ab", "xyz", fillvalue="-")))
