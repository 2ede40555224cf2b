"""SimPy processes of the dataflow of one mini-batch, phase by phase.

Event-driven and transaction-level: SimPy orders the work and resolves contention; each
stage of a transaction lasts the closed-form cycles its component gives (archsim/hw).

Resources of one simulation: per tile a read stage (array + DACs) and a convert stage
(ADC bank + shift-and-add), each capacity 1; the DPU's arithmetic lanes (capacity 1: one
vector operation at a time); every interconnect link (see :mod:`archsim.interconnect.network`).

Phases (each ends when all its work is done: batch-statistics batch-norm needs the whole
batch's pre-activations before any activation of a layer exists, so layers are a barrier):

* forward / eval, per layer: each tile streams the batch through four pipelined stages --
  input delivery (gbuf or DPU -> tiles, one multicast per row block unless
  ``interconnect.input_delivery`` is 'unicast'), array read, conversion, partial-sum delivery to the DPU
  and its accumulation -- so images overlap across stages and tiles work in parallel; then
  batch-norm and the activation on the DPU.
* a convolution streams ``windows`` input vectors per image (one per output position, its
  im2col window) through the same tiles, split over the kernel's replicas; its pooling runs on
  the DPU before the batch-norm (compares for max, adds for average: Horowitz 2014's add
  energy, the DPU's ``dpu.add``).
* backward: loss gradient; per layer from the last: batch-norm backward, the outer-product
  gradient (B x n_in x n_out MACs on the DPU) in parallel with the error propagation
  (digital MACs on the DPU, or a transposed read on the tiles).
* update: Adam + meta-function + re-quantisation of every hidden weight on the DPU.
* write: the DPU sends each tile its list of level changes; each tile write-verifies them
  (tiles in parallel; see :mod:`archsim.hw.programming`).
"""

from __future__ import annotations

import math
from collections.abc import Generator
from dataclasses import dataclass

import numpy as np
import simpy

from archsim.engine.ledger import Ledger
from archsim.engine.trace import Tracer
from archsim.hw.chip import Chip
from archsim.hw.tile import TileOp
from archsim.interconnect.network import Network, Route
from archsim.interconnect.topology import tile_node
from archsim.mapping.mapper import NetworkMapping, TileAssignment


@dataclass(frozen=True)
class ModelInfo:
    """What the schedule needs to know about the network and its learning rule."""

    sizes: tuple[int, ...]
    sign_hidden: bool
    quantized: bool
    meta: bool
    levels: int
    positions: tuple[int, ...] | None = None
    """Output positions per image of each layer after pooling (batch-norm elements per
    channel); None = 1 for every layer (an MLP)."""
    pools: tuple[tuple[tuple[str, int], ...], ...] | None = None
    """Per layer the (kind, window) of each pooling of its pre-activations; None = none."""
    out_hw: tuple[tuple[int, int], ...] | None = None
    """Per layer the (height, width) of a convolution's output before pooling; None = (1, 1)."""

    @property
    def n_layers(self) -> int:
        return len(self.sizes) - 1

    def layer_positions(self, layer: int) -> int:
        return 1 if self.positions is None else self.positions[layer]

    def layer_pools(self, layer: int) -> tuple[tuple[str, int], ...]:
        return () if self.pools is None else self.pools[layer]

    def layer_out_hw(self, layer: int) -> tuple[int, int]:
        return (1, 1) if self.out_hw is None else self.out_hw[layer]


def replica_shares(vectors: int, replicas: int) -> list[int]:
    """``vectors`` input vectors split as evenly as possible over ``replicas`` copies."""
    base, extra = divmod(vectors, replicas)
    return [base + (1 if r < extra else 0) for r in range(replicas)]


def pool_ops(maps: int, hw: tuple[int, int], pools: tuple[tuple[str, int], ...]) -> tuple[int, int]:
    """DPU (mults, adds) of the poolings of ``maps`` feature maps of ``hw`` positions: a max
    window of s*s values takes s*s - 1 compares (priced as adds: a comparator is a subtractor),
    an average s*s - 1 adds and one multiply by 1/(s*s); rows and columns left over by the
    windows are not read."""
    mults = adds = 0
    height, width = hw
    for kind, size in pools:
        height, width = height // size, width // size
        outputs = maps * height * width
        adds += outputs * (size * size - 1)
        if kind == "avg":
            mults += outputs
    return mults, adds


@dataclass(frozen=True)
class TileWrite:
    """Level changes one tile must program in a batch."""

    tile_id: int
    changes: int
    pulses: int
    steps: int  # sequential pulse-and-verify steps (row-parallel: sum of row maxima)


class Sim:
    """One SimPy environment with the chip's resources, recording into a ledger."""

    def __init__(self, chip: Chip, mapping: NetworkMapping, network: Network, model: ModelInfo,
                 ledger: Ledger, tracer: Tracer | None, group_tiles: bool = True) -> None:
        self.env = simpy.Environment()
        self.group_tiles = group_tiles
        self.multicast = chip.hw.interconnect.input_delivery == "multicast"
        self.chip = chip
        self.mapping = mapping
        self.network = network
        self.model = model
        self.ledger = ledger
        self.tracer = tracer
        self.px = chip.period_ps["crossbar"]
        self.pd = chip.period_ps["dpu"]
        self.pn = chip.period_ps["interconnect"]
        self.read_stage: dict[int, simpy.Resource] = {}
        self.convert_stage: dict[int, simpy.Resource] = {}
        self.dpu = simpy.Resource(self.env, capacity=1)
        self.links: dict[tuple[str, str], simpy.Resource] = {}

    # ---- primitives --------------------------------------------------------------------
    def _res(self, table: dict[int, simpy.Resource], tile: int) -> simpy.Resource:
        res = table.get(tile)
        if res is None:
            res = table[tile] = simpy.Resource(self.env, capacity=1)
        return res

    def transfer(self, src: str, dst: str, bits: int, phase: str, packets: int = 1) -> Generator:
        """Send ``packets`` packets of ``bits`` bits each."""
        yield from self.send(self.network.route(src, dst), f"{src}->{dst}", bits, phase, packets)

    def send(self, route: Route, label: str, bits: int, phase: str, packets: int = 1) -> Generator:
        """Send ``packets`` packets of ``bits`` bits each along ``route`` (unicast or multicast)."""
        if bits <= 0 or packets <= 0:
            return
        start = self.env.now
        cycles = yield from self.network.send(self.env, self.links, route, bits, packets)
        hops = route.hops
        self.ledger.add("interconnect", "bit_hop", phase, bits * packets * hops, cycles * hops)
        if self.tracer is not None:
            self.tracer.span("interconnect", label, "transfer", phase, start, self.env.now)

    def dpu_work(self, phase: str, label: str, mults: int, adds: int) -> Generator:
        ops = mults + adds
        if ops <= 0:
            return
        n = self.chip.dpu.op_cycles(ops)
        with self.dpu.request() as req:
            yield req
            start = self.env.now
            yield self.env.timeout(n * self.pd)
        if mults:
            self.ledger.add("dpu", "mult", phase, mults)
        if adds:
            self.ledger.add("dpu", "add", phase, adds)
        self.ledger.add("dpu", label, phase, 0, n)
        if self.tracer is not None:
            self.tracer.span("dpu", "dpu", label, phase, start, self.env.now)

    def sram(self, phase: str, read_bits: int = 0, write_bits: int = 0) -> None:
        if read_bits:
            self.ledger.add("sram", "read_bit", phase, read_bits)
        if write_bits:
            self.ledger.add("sram", "write_bit", phase, write_bits)

    # ---- one tile streaming a batch ------------------------------------------------------
    def tokens(self, batch: int) -> list[int]:
        """Images per SimPy token: the batch cut into equal groups (see images_per_token)."""
        per = self.chip.hw.images_per_token
        if per is None:
            per = -(-batch // self.chip.hw.max_tokens_per_batch)
        per = max(1, min(per, batch))
        full, rest = divmod(batch, per)
        return [per] * full + ([rest] if rest else [])

    def delivery_groups(self, tiles: list[TileAssignment], key) -> list[list[TileAssignment]]:
        """Tiles that receive the same input packets: with multicast every tile sharing
        ``key`` (the row block forward, the column block transposed); with unicast each tile."""
        if not self.multicast:
            return [[t] for t in tiles]
        groups: dict[int, list[TileAssignment]] = {}
        for t in tiles:
            groups.setdefault(key(t), []).append(t)
        return list(groups.values())

    def tile_stream(self, t: TileAssignment, batch: int, op: TileOp, src: str, in_bits: int,
                    out_bits: int, acc_adds: int, phase: str, label: str) -> Generator:
        """One tile fed on its own (see :meth:`group_stream`)."""
        yield from self.group_stream([t], [op], batch, src, in_bits, [out_bits], [acc_adds], phase, label)

    def group_stream(self, tiles: list[TileAssignment], ops: list[TileOp], batch: int, src: str,
                     in_bits: int, out_bits: list[int], acc_adds: list[int], phase: str,
                     label: str) -> Generator:
        """Stream the batch through tiles fed by the same packets: deliver -> read ->
        convert -> send + accumulate.

        Each stage is its own process, handing tokens (groups of images) on through queues,
        so a tile reads token k+1 while it converts token k and sends token k-1. One delivery
        process feeds the group (one multicast packet per token, or the tile's own packets
        with unicast). A tile's read and convert stages have no other user in a phase, so
        tiles with the same stage cycles run in lock step: with ``group_tiles`` one pair of
        stage processes serves all of them (identical times, far fewer events); only the
        sends to the DPU, which contend, stay per tile.
        """
        env = self.env
        tracer = self.tracer
        px = self.px
        tokens = self.tokens(batch)
        nodes = [tile_node(t.tile_id) for t in tiles]
        route = self.network.multicast_route(src, tuple(nodes))
        classes: dict[tuple[int, ...], list[int]] = {}
        for i, op in enumerate(ops):
            key = (op.read_cycles, op.convert_cycles) if self.group_tiles else (i,)
            classes.setdefault(key, []).append(i)
        inboxes = [simpy.Store(env) for _ in classes]
        feed_label = f"{src}->{nodes[0]}" + (f" (+{len(nodes) - 1} multicast)" if len(nodes) > 1 else "")
        converted = [simpy.Store(env) for _ in tiles]

        def feed():
            for n in tokens:
                yield from self.send(route, feed_label, in_bits, phase, n)
                for box in inboxes:
                    yield box.put(n)

        def stage(members, inbox, resource, cycles_per_image: int, action: str, outboxes):
            """One pipeline stage of the tiles ``members``: wait for a token, hold the
            resource, pass the token on."""
            for _ in tokens:
                n = yield inbox.get()
                with resource.request() as req:
                    yield req
                    start = env.now
                    yield env.timeout(cycles_per_image * n * px)
                if tracer is not None:
                    for i in members:
                        tracer.span("tile", nodes[i], f"{label}.{action}", phase, start, env.now)
                for box in outboxes:
                    yield box.put(n)

        def drain(i: int):
            for _ in tokens:
                n = yield converted[i].get()
                yield from self.transfer(nodes[i], "dpu", out_bits[i], phase, n)
                if acc_adds[i]:
                    yield from self.dpu_work(phase, "accumulate", 0, acc_adds[i] * n)

        procs = [env.process(feed())]
        for members, inbox in zip(classes.values(), inboxes):
            first = tiles[members[0]].tile_id
            op = ops[members[0]]
            read = simpy.Store(env)
            procs.append(env.process(stage(members, inbox, self._res(self.read_stage, first),
                                           op.read_cycles, "read", [read])))
            procs.append(env.process(stage(members, read, self._res(self.convert_stage, first),
                                           op.convert_cycles, "convert",
                                           [converted[i] for i in members])))
        procs += [env.process(drain(i)) for i in range(len(tiles))]
        yield env.all_of(procs)
        for op in ops:
            self.ledger.add_counts(op.counts, phase, batch)
            self.ledger.add("crossbar", label, phase, 0, op.read_cycles * batch)
            self.ledger.add("adc", label, phase, 0, op.convert_cycles * batch)

    # ---- phases --------------------------------------------------------------------------
    def psum_bits(self, slices: int, blocks: int) -> int:
        """Width of a shift-added partial sum: ADC bits + slice weights + block carries."""
        return self.chip.tile.adc.bits + slices - 1 + max(0, math.ceil(math.log2(max(blocks, 1))))

    def forward(self, batch: int, phase: str) -> Generator:
        training = phase == "forward"
        tile = self.chip.tile
        model = self.model
        for layer_map in self.mapping.layers:
            layer = layer_map.layer
            binary = layer > 0 and model.sign_hidden
            slices = tile.dac.slices(binary)
            value_bits = 1 if binary else tile.dac.input_bits
            src = "gbuf" if layer == 0 else "dpu"
            n_out = layer_map.n_out
            vectors = batch * layer_map.windows  # one per image, or one per window of a conv
            streams = []  # (tiles fed the same packets, vectors they stream)
            for replica, share in enumerate(replica_shares(vectors, layer_map.replicas)):
                if share:
                    streams += [(g, share) for g in self.delivery_groups(
                        layer_map.replica_tiles(replica), lambda t: t.row_block)]
            # the source buffer is read once per packet sent (once per row block with multicast)
            read_bits = sum(share * group[0].rows_used * value_bits for group, share in streams)
            if layer == 0:
                self.ledger.add("global_buffer", "read_bit", phase, read_bits)
            else:
                self.sram(phase, read_bits=read_bits)
            out_bits_each = self.psum_bits(slices, layer_map.row_blocks)
            accumulate = layer_map.row_blocks > 1
            procs = [self.env.process(self.group_stream(
                group, [tile.mvm(t.rows_used, t.outputs, slices) for t in group], share, src,
                group[0].rows_used * value_bits, [t.outputs * out_bits_each for t in group],
                [t.outputs if accumulate else 0 for t in group], phase, "mvm"))
                for group, share in streams]
            yield self.env.all_of(procs)
            pools = model.layer_pools(layer)
            if pools:  # pooled in the DPU from the accumulated pre-activations
                mults, adds = pool_ops(batch * n_out, model.layer_out_hw(layer), pools)
                self.sram(phase, write_bits=vectors * n_out * 32, read_bits=vectors * n_out * 32)
                yield from self.dpu_work(phase, "pool", mults, adds)
            elements = batch * model.layer_positions(layer) * n_out
            ops = elements * self.chip.hw.dpu.bn_forward_ops_per_element
            yield from self.dpu_work(phase, "batchnorm", min(2 * elements, ops), max(0, ops - 2 * elements))
            last = layer == model.n_layers - 1
            act_bits = 1 if (model.sign_hidden and not last) else 32
            self.sram(phase, write_bits=elements * act_bits + (elements * 32 if training else 0))

    def backward(self, batch: int, phase: str = "backward") -> Generator:
        hw = self.chip.hw
        tile = self.chip.tile
        model = self.model
        n_classes = model.sizes[-1]
        yield from self.dpu_work(phase, "loss_gradient", 2 * batch * n_classes, 2 * batch * n_classes)
        for layer_map in reversed(self.mapping.layers):
            layer = layer_map.layer
            n_in, n_out = layer_map.n_in, layer_map.n_out
            elements = batch * model.layer_positions(layer) * n_out
            ops = elements * hw.dpu.bn_backward_ops_per_element
            self.sram(phase, read_bits=elements * 32)
            yield from self.dpu_work(phase, "batchnorm_backward", min(3 * elements, ops),
                                     max(0, ops - 3 * elements))
            vectors = batch * layer_map.windows
            if model.layer_pools(layer):  # each pooled gradient goes back to its window's winner
                self.sram(phase, write_bits=vectors * n_out * 32)
                yield from self.dpu_work(phase, "unpool", 0, vectors * n_out)
            binary = layer > 0 and model.sign_hidden
            value_bits = 1 if binary else tile.dac.input_bits
            macs = vectors * n_in * n_out
            if layer == 0:
                self.ledger.add("global_buffer", "read_bit", phase, vectors * n_in * value_bits)
            else:
                self.sram(phase, read_bits=vectors * n_in * value_bits)
            self.sram(phase, write_bits=n_in * n_out * 32)
            procs = [self.env.process(self.dpu_work(phase, "gradient", macs, macs))]
            if layer > 0:
                if hw.crossbar.backward == "digital":
                    self.sram(phase, read_bits=n_in * n_out * self.chip.dpu.hidden_bits)
                    procs.append(self.env.process(self.dpu_work(phase, "backward_mvm", macs, macs)))
                else:
                    slices = tile.dac.slices(False)
                    out_each = self.psum_bits(slices, layer_map.col_blocks)
                    accumulate = layer_map.col_blocks > 1
                    for replica, share in enumerate(replica_shares(vectors, layer_map.replicas)):
                        if not share:
                            continue
                        for group in self.delivery_groups(layer_map.replica_tiles(replica), lambda t: t.col_block):
                            procs.append(self.env.process(self.group_stream(
                                group, [tile.mvm_transposed(t.rows_used, t.outputs, slices) for t in group],
                                share, "dpu", group[0].outputs * tile.dac.input_bits,
                                [t.rows_used * out_each for t in group],
                                [t.rows_used if accumulate else 0 for t in group], phase,
                                "mvm_transposed")))
            yield self.env.all_of(procs)
            if layer > 0:
                if layer_map.windows > 1 or layer_map.kind == "conv2d":
                    # overlapping windows' input gradients summed onto the feature map (col2im)
                    yield from self.dpu_work(phase, "col2im", 0, vectors * n_in)
                # straight-through gate of the previous layer's activation
                inputs = model.layer_positions(layer - 1) * model.sizes[layer]
                yield from self.dpu_work(phase, "ste_gate", 0, batch * inputs)

    def update(self, batch: int, phase: str = "update") -> Generator:
        dpu_cfg = self.chip.hw.dpu
        model = self.model
        hb = self.chip.dpu.hidden_bits
        meta_mults = min(2, dpu_cfg.meta_ops_per_weight) if model.meta else 0
        meta_adds = dpu_cfg.meta_ops_per_weight - meta_mults if model.meta else 0
        quant_ops = (math.ceil(math.log2(model.levels)) + 1) if model.quantized else 0
        for layer_map in self.mapping.layers:
            n_w = layer_map.n_in * layer_map.n_out
            n_bn = 2 * layer_map.n_out
            mults = n_w * (dpu_cfg.update_mults_per_weight + meta_mults) + n_bn * dpu_cfg.update_mults_per_weight
            adds = n_w * (dpu_cfg.update_adds_per_weight + meta_adds + quant_ops) + n_bn * dpu_cfg.update_adds_per_weight
            self.sram(phase, read_bits=(n_w + n_bn) * (3 * hb + 32), write_bits=(n_w + n_bn) * 3 * hb)
            yield from self.dpu_work(phase, "update", mults, adds)

    def write(self, writes: list[TileWrite], device_energy_j: float, phase: str = "write") -> Generator:
        """The DPU sends the change lists one after another through its network port
        (longest programming first), each tile write-verifies as soon as its list arrived."""
        env = self.env
        tracer = self.tracer
        account_write(self.ledger, self.chip, self.network, writes, device_energy_j, phase)
        programs = []

        def program(w: TileWrite, node: str):
            with self._res(self.read_stage, w.tile_id).request() as req:
                yield req
                start = env.now
                yield env.timeout(self.chip.write.program_cycles(w.steps) * self.px)
            if tracer is not None:
                tracer.span("tile", node, "write_verify", phase, start, env.now)

        for w in write_order(self.chip, writes):
            node = tile_node(w.tile_id)
            start = env.now
            yield from self.network.transfer(env, self.links, "dpu", node, self.chip.write.message_bits(w.changes))
            if tracer is not None:
                tracer.span("interconnect", f"dpu->{node}", "transfer", phase, start, env.now)
            programs.append(env.process(program(w, node)))
        if programs:
            yield env.all_of(programs)


def write_order(chip: Chip, writes: list[TileWrite]) -> list[TileWrite]:
    """Longest programming time first (LPT), ties by tile id: shortens the write phase."""
    return sorted(writes, key=lambda w: (-w.steps, w.tile_id))


@dataclass(frozen=True)
class WritePlan:
    """The tiles with level changes in one batch, as int64 columns in plan order (the
    schedule's write accounting works on these; SimPy and the trace take :meth:`tiles`)."""

    tile_id: np.ndarray
    changes: np.ndarray
    pulses: np.ndarray
    steps: np.ndarray

    @classmethod
    def of(cls, writes: "list[TileWrite] | WritePlan") -> "WritePlan":
        if isinstance(writes, WritePlan):
            return writes
        n = len(writes)
        return cls(*(np.fromiter((getattr(w, name) for w in writes), dtype=np.int64, count=n)
                     for name in ("tile_id", "changes", "pulses", "steps")))

    @classmethod
    def empty(cls) -> "WritePlan":
        return cls(*(np.zeros(0, dtype=np.int64) for _ in range(4)))

    def __len__(self) -> int:
        return int(self.tile_id.size)

    def tiles(self) -> list[TileWrite]:
        return [TileWrite(int(t), int(c), int(p), int(s))
                for t, c, p, s in zip(self.tile_id, self.changes, self.pulses, self.steps)]


@dataclass(frozen=True)
class WriteColumns:
    """What a write plan costs per tile, as int64 columns in plan order: the ledger totals
    and the write time are sums, a sort and a running sum over these, so every total is the
    integer that adding tile by tile in Python gives."""

    plan: WritePlan
    bits: np.ndarray  # change-list message bits (WriteVerify.message_bits)
    hops: np.ndarray  # links from the DPU to the tile
    transfer_cycles: np.ndarray  # interconnect cycles of the message (Network.transfer_cycles)
    program_cycles: np.ndarray  # crossbar cycles of the tile's pulse-and-verify steps

    @classmethod
    def of(cls, chip: Chip, network: Network, writes: "list[TileWrite] | WritePlan") -> "WriteColumns":
        plan = WritePlan.of(writes)
        # message_bits and transfer_cycles are integer arithmetic that works on int64 columns
        bits = chip.write.message_bits(plan.changes)
        hops = network.tile_hops("dpu", plan.tile_id)
        transfer = network.transfer_cycles(bits, hops)
        return cls(plan, bits, hops, transfer, chip.write.program_cycles_of(plan.steps))


def account_write(ledger: Ledger, chip: Chip, network: Network,
                  writes: "list[TileWrite] | WritePlan | WriteColumns", device_energy_j: float,
                  phase: str = "write") -> None:
    """Ledger entries of a write phase (shared by the SimPy and the analytic schedule).

    Per tile: the change list read from SRAM (bits), its bit-hops and link cycles, and the
    tile's programming cycles; added as column sums (integers, so the same totals as adding
    tile by tile)."""
    cols = writes if isinstance(writes, WriteColumns) else WriteColumns.of(chip, network, writes)
    ledger.add("sram", "read_bit", phase, int(cols.bits.sum()))
    ledger.add("interconnect", "bit_hop", phase, int((cols.bits * cols.hops).sum()),
               int((cols.transfer_cycles * cols.hops).sum()))
    ledger.add("programming", "program", phase, 0, int(cols.program_cycles.sum()))
    pulses = int(cols.plan.pulses.sum())
    if pulses:
        if device_energy_j > 0:
            # the device model's energy covers pulses and verify-read cell currents
            ledger.add("programming", "pulse_device", phase, pulses)
        else:
            ledger.add("programming", "pulse", phase, pulses)
            ledger.add("programming", "verify_cell", phase, pulses)
        ledger.add("adc", "verify_convert", phase, pulses)
    if device_energy_j > 0:
        ledger.add_extra_energy("programming", "pulse_device", phase, device_energy_j)


def write_time_ps(chip: Chip, network: Network, writes: "list[TileWrite] | WritePlan | WriteColumns") -> int:
    """Duration of the write phase without SimPy: transfers leave the DPU port one after
    another (nothing else is on the network) in :func:`write_order`, each tile programs once
    its list arrived."""
    cols = writes if isinstance(writes, WriteColumns) else WriteColumns.of(chip, network, writes)
    if not len(cols.plan):
        return 0
    order = np.lexsort((cols.plan.tile_id, -cols.plan.steps))  # write_order: longest first, ties by id
    arrived = np.cumsum(cols.transfer_cycles[order] * network.period_ps)
    finish = arrived + cols.program_cycles[order] * chip.period_ps["crossbar"]
    return int(max(arrived[-1], finish.max()))
