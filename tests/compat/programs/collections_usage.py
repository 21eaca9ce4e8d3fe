from collections import ChainMap, Counter, OrderedDict, defaultdict, deque, namedtuple

text = "the cat and the hat and the bat"
counts = Counter(text.split())
print(counts.most_common(3))
graph = defaultdict(list)
for a, b in [(1, 2), (1, 3), (2, 4), (3, 4), (4, 5)]:
    graph[a].append(b)
queue, seen = deque([1]), {1}
order = []
while queue:
    node = queue.popleft()
    order.append(node)
    for nxt in graph[node]:
        if nxt not in seen:
            seen.add(nxt)
            queue.append(nxt)
print(order)
od = OrderedDict.fromkeys("abcde")
od.move_to_end("b")
print(list(od))
Pair = namedtuple("Pair", ["left", "right"])
print(Pair(1, 2)._replace(right=5), ChainMap({"a": 1}, {"a": 2, "b": 3})["b"])
window = deque(maxlen=3)
for i in range(6):
    window.append(i)
print(window)
