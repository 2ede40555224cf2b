"""Interconnect graphs (networkx) over the tiles, the DPU ('dpu') and the global buffer ('gbuf').

Topologies are registered by name in :data:`TOPOLOGIES` (``hardware.interconnect.topology``):
``bus``, ``mesh``, ``tree``, ``custom`` (each class below says what it builds).

Every link is full duplex (one SimPy resource per direction), except the bus (one resource).
"""

from __future__ import annotations

import math

import networkx as nx

from archsim.config.hardware import InterconnectConfig
from archsim.errors import ConfigError
from archsim.hw.registry import Registry


def tile_node(i: int) -> str:
    return f"tile{i}"


TOPOLOGIES: Registry[type["Topology"]] = Registry("interconnect topology", "hardware.interconnect.topology")


class Topology:
    """A way of linking the endpoints; ``shared_medium``: one resource for the whole network."""

    shared_medium = False

    def add_links(self, graph: nx.Graph, endpoints: list[str], n_tiles: int, cfg: InterconnectConfig) -> None:
        raise NotImplementedError


@TOPOLOGIES.register("bus")
class Bus(Topology):
    """Every endpoint on one shared medium (node 'bus'); a transfer occupies the whole bus."""

    shared_medium = True

    def add_links(self, graph, endpoints, n_tiles, cfg):
        graph.add_node("bus", kind="bus")
        graph.add_edges_from(("bus", e) for e in endpoints)


@TOPOLOGIES.register("mesh")
class Mesh(Topology):
    """Endpoints on a 2-D grid (dpu and gbuf first, then the tiles), 4-neighbour links."""

    def add_links(self, graph, endpoints, n_tiles, cfg):
        width = cfg.mesh_columns or math.ceil(math.sqrt(len(endpoints)))
        for index, node in enumerate(endpoints):
            x, y = index % width, index // width
            graph.nodes[node]["pos"] = (x, y)
            if x > 0:
                graph.add_edge(node, endpoints[index - 1])
            if y > 0:
                graph.add_edge(node, endpoints[index - width])


@TOPOLOGIES.register("tree")
class Tree(Topology):
    """Tiles at the leaves of routers of arity ``tree_arity``; the root links dpu and gbuf."""

    def add_links(self, graph, endpoints, n_tiles, cfg):
        level = [tile_node(i) for i in range(n_tiles)]
        depth = 0
        while True:
            parents = []
            for p, start in enumerate(range(0, len(level), cfg.tree_arity)):
                router = f"r{depth}_{p}"
                graph.add_node(router, kind="router")
                graph.add_edges_from((router, child) for child in level[start : start + cfg.tree_arity])
                parents.append(router)
            level, depth = parents, depth + 1
            if len(level) == 1:
                break
        graph.add_edges_from(((level[0], "dpu"), (level[0], "gbuf")))


@TOPOLOGIES.register("custom")
class Custom(Topology):
    """Exactly the links listed in ``custom_links``."""

    def add_links(self, graph, endpoints, n_tiles, cfg):
        graph.add_edges_from(cfg.custom_links)


def topology(cfg: InterconnectConfig) -> Topology:
    return TOPOLOGIES.get(cfg.topology)()


def build_graph(n_tiles: int, cfg: InterconnectConfig) -> nx.Graph:
    """The interconnect of ``n_tiles`` tiles plus 'dpu' and 'gbuf'."""
    graph = nx.Graph()
    endpoints = ["dpu", "gbuf"] + [tile_node(i) for i in range(n_tiles)]
    graph.add_nodes_from(endpoints, kind="endpoint")
    topology(cfg).add_links(graph, endpoints, n_tiles, cfg)
    check_reachable(graph, n_tiles)
    return graph


def check_reachable(graph: nx.Graph, n_tiles: int) -> None:
    """Every tile and the gbuf must reach the dpu."""
    reachable = nx.node_connected_component(graph, "dpu")
    missing = [n for n in [tile_node(i) for i in range(n_tiles)] + ["gbuf"] if n not in reachable]
    if missing:
        raise ConfigError(
            f"interconnect leaves {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''} "
            "unreachable from the dpu; add links"
        )
