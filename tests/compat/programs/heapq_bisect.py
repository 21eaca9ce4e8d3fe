import bisect
import heapq


def dijkstra(graph, source):
    dist = {source: 0}
    heap = [(0, source)]
    while heap:
        d, node = heapq.heappop(heap)
        if d > dist.get(node, float("inf")):
            continue
        for nxt, w in graph.get(node, []):
            nd = d + w
            if nd < dist.get(nxt, float("inf")):
                dist[nxt] = nd
                heapq.heappush(heap, (nd, nxt))
    return dist


graph = {"s": [("a", 7), ("b", 2)], "b": [("a", 3), ("c", 8)], "a": [("c", 1)]}
print(sorted(dijkstra(graph, "s").items()))
print(heapq.nsmallest(3, [9, 1, 8, 2, 7, 3]), heapq.nlargest(2, [9, 1, 8, 2]))
scores = [10, 20, 30, 40, 50]
print(bisect.bisect_left(scores, 30), bisect.bisect_right(scores, 30), bisect.bisect(scores, 35))
bisect.insort(scores, 33)
print(scores)
