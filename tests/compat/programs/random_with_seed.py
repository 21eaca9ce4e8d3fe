import random

random.seed(42)
print(random.random(), random.randint(1, 100), random.choice("abcdef"))
items = list(range(10))
random.shuffle(items)
print(items)
print(random.sample(range(100), 5), round(random.gauss(0, 1), 12))
rng = random.Random(7)
print([rng.randrange(1000) for _ in range(5)])
