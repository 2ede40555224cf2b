"""On-chip interconnect: networkx topologies and the SimPy link model."""

from archsim.interconnect.network import Network, Route
from archsim.interconnect.topology import build_graph, check_reachable, tile_node

__all__ = ["Network", "Route", "build_graph", "check_reachable", "tile_node"]
