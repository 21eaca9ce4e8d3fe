import networkx as nx

graph = nx.Graph()
edges = [("a", "b", 4), ("a", "c", 2), ("b", "c", 1), ("b", "d", 5), ("c", "d", 8), ("c", "e", 10), ("d", "e", 2)]
graph.add_weighted_edges_from(edges)
print(nx.dijkstra_path(graph, "a", "e"))
print(nx.dijkstra_path_length(graph, "a", "e"))
tree = nx.minimum_spanning_tree(graph)
print(sorted(tree.edges(data="weight")))
print(nx.is_connected(graph), graph.number_of_nodes(), graph.number_of_edges())
