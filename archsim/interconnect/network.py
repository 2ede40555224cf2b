"""SimPy model of the interconnect: links are resources, transfers contend for them.

A packet of ``bits`` from ``src`` to ``dst`` follows the shortest path (cached) and holds
every link of it (circuit switching / wormhole with the whole path reserved) for

    ceil(bits / link_width_bits) + hops * hop_latency_cycles   interconnect cycles;

a token of n images sends n such packets back to back on one reservation, acquiring the
links in one global order so no two transfers can deadlock. On a bus the path is the bus
itself (one resource, one hop). Energy: bits * hops * energy_per_bit.

A multicast (one source, several destinations: a layer's input to the tiles of one row block)
is one packet on the union of the routes -- the multicast tree, or the bus broadcast -- held
for ``ceil(bits / width) + depth * hop_latency`` cycles, depth being its longest branch; it
costs bits * (links of the tree) bit-hops, so the links shared by the routes carry the
bits once.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

import networkx as nx
import numpy as np
import simpy

from archsim.hw.base import ceil_div
from archsim.interconnect.topology import tile_node


@dataclass
class Route:
    """Links a packet holds (resource keys, sorted in the global order) and its depth."""

    links: tuple[tuple[str, str], ...]
    depth: int = 0  # hops of the longest branch (0: unicast, = len(links))

    @property
    def hops(self) -> int:
        """Link traversals of one packet (bit-hops per bit)."""
        return len(self.links)

    @property
    def latency_hops(self) -> int:
        return self.depth or len(self.links)


class Network:
    """Routes, link resources and the transfer process of one SimPy environment."""

    def __init__(
        self,
        graph: nx.Graph,
        bus: bool,
        link_width_bits: int,
        hop_latency_cycles: int,
        period_ps: int,
    ) -> None:
        self.graph = graph
        self.bus = bus
        self.width = link_width_bits
        self.hop_latency = hop_latency_cycles
        self.period_ps = period_ps
        self._routes: dict[tuple[str, str], Route] = {}
        self._order: dict[tuple[str, str], int] = {}
        self._tile_hops: dict[str, np.ndarray] = {}

    def route(self, src: str, dst: str) -> Route:
        key: tuple = (src, dst)
        route = self._routes.get(key)
        if route is None:
            if self.bus:
                links = (("bus", "bus"),)
            else:
                path = nx.shortest_path(self.graph, src, dst)
                links = tuple(sorted(zip(path[:-1], path[1:])))
            route = self._routes[key] = Route(links)
        return route

    def tile_hops(self, src: str, tile_ids: np.ndarray) -> np.ndarray:
        """Links of the route from ``src`` to each tile of ``tile_ids`` (int64 array; the
        hops of :meth:`route`, tabulated once per source)."""
        table = self._tile_hops.get(src)
        top = int(tile_ids.max()) + 1 if tile_ids.size else 0
        if table is None or table.size < top:
            table = np.array([self.route(src, tile_node(t)).hops for t in range(top)], dtype=np.int64)
            self._tile_hops[src] = table
        return table[tile_ids]

    def multicast_route(self, src: str, dsts: tuple[str, ...]) -> Route:
        """The union of the routes from ``src`` to every destination (one shared medium on a bus)."""
        if len(dsts) == 1:
            return self.route(src, dsts[0])
        key = (src, dsts)
        route = self._routes.get(key)
        if route is None:
            if self.bus:
                route = Route((("bus", "bus"),))
            else:
                branches = [self.route(src, dst) for dst in dsts]
                links = tuple(sorted({link for branch in branches for link in branch.links}))
                route = Route(links, max(branch.hops for branch in branches))
            self._routes[key] = route
        return route

    def transfer_cycles(self, bits: int, hops: int) -> int:
        return ceil_div(bits, self.width) + hops * self.hop_latency

    def transfer(
        self,
        env: simpy.Environment,
        links: dict[tuple[str, str], simpy.Resource],
        src: str,
        dst: str,
        bits: int,
        packets: int = 1,
    ) -> Generator:
        """SimPy process body: move ``packets`` packets of ``bits`` each from ``src`` to
        ``dst`` back to back on one path reservation; returns the cycles held."""
        return (yield from self.send(env, links, self.route(src, dst), bits, packets))

    def send(
        self,
        env: simpy.Environment,
        links: dict[tuple[str, str], simpy.Resource],
        route: Route,
        bits: int,
        packets: int = 1,
    ) -> Generator:
        """SimPy process body: hold every link of ``route`` while ``packets`` packets of
        ``bits`` each pass; returns the cycles held."""
        held = []
        for key in route.links:
            res = links.get(key)
            if res is None:
                res = links[key] = simpy.Resource(env, capacity=1)
            req = res.request()
            yield req
            held.append((res, req))
        duration = packets * self.transfer_cycles(bits, route.latency_hops)
        yield env.timeout(duration * self.period_ps)
        for res, req in held:
            res.release(req)
        return duration
