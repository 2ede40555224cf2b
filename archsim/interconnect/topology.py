"""Interconnect graphs (networkx) over the tiles, the DPU ('dpu') and the global buffer ('gbuf').

* ``bus``: every endpoint on one shared medium (node 'bus'); a transfer occupies the whole bus.
* ``mesh``: endpoints on a 2-D grid (dpu and gbuf first, then tile0, tile1, ...), links
  between 4-neighbours.
* ``tree``: tiles are the leaves of routers of arity ``tree_arity``; the root router also
  links the dpu and the gbuf.
* ``custom``: exactly the listed links.

Every link is full duplex (one SimPy resource per direction), except the bus (one resource).
"""

from __future__ import annotations

import math

import networkx as nx

from archsim.config.hardware import InterconnectConfig
from archsim.errors import ConfigError


def tile_node(i: int) -> str:
    return f"tile{i}"


def build_graph(n_tiles: int, cfg: InterconnectConfig) -> nx.Graph:
    """The interconnect of ``n_tiles`` tiles plus 'dpu' and 'gbuf'."""
    graph = nx.Graph()
    endpoints = ["dpu", "gbuf"] + [tile_node(i) for i in range(n_tiles)]
    graph.add_nodes_from(endpoints, kind="endpoint")
    if cfg.topology == "bus":
        graph.add_node("bus", kind="bus")
        graph.add_edges_from(("bus", e) for e in endpoints)
    elif cfg.topology == "mesh":
        width = cfg.mesh_columns or math.ceil(math.sqrt(len(endpoints)))
        for index, node in enumerate(endpoints):
            x, y = index % width, index // width
            graph.nodes[node]["pos"] = (x, y)
            if x > 0:
                graph.add_edge(node, endpoints[index - 1])
            if y > 0:
                graph.add_edge(node, endpoints[index - width])
    elif cfg.topology == "tree":
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
    elif cfg.topology == "custom":
        graph.add_edges_from(cfg.custom_links)
    else:  # pragma: no cover - the config forbids it
        raise ConfigError(f"unknown interconnect topology {cfg.topology!r}")
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
