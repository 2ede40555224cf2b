"""Hand-checked cycles and energy of single actions: one MVM on one tile, transfers, writes."""

from __future__ import annotations

import math

import numpy as np
import pytest
import simpy

from archsim.config.hardware import HardwareConfig
from archsim.engine.dataflow import ModelInfo, Sim
from archsim.engine.ledger import Ledger
from archsim.hw.chip import build_chip
from archsim.hw.converters import ISAAC_ADC_PJ
from archsim.interconnect.network import Network
from archsim.interconnect.topology import build_graph
from archsim.mapping.mapper import map_network

ROWS, COLS, INPUT_BITS, ADC_BITS, COLS_PER_ADC = 64, 32, 4, 6, 4
G_MEAN = 5e-5


def small_hw(**extra) -> HardwareConfig:
    tree = {
        "technology": {"energy_scaling": "none"},
        "clock": {"crossbar_hz": 1e9},
        "tile": {"rows": ROWS, "cols": COLS, "weight_encoding": "differential"},
        "dac": {"input_bits": INPUT_BITS, "mode": "bit_serial", "latency_s": 1e-9},
        "adc": {"bits": ADC_BITS, "columns_per_adc": COLS_PER_ADC},
        "crossbar": {"read_voltage_v": 0.2, "read_time_s": 1e-9, "mean_cell_conductance_s": G_MEAN},
        "images_per_token": 1,
    }
    tree.update(extra)
    return HardwareConfig.model_validate(tree)


def one_tile_sim(hw: HardwareConfig):
    chip = build_chip(hw, levels=3)
    mapping = map_network((ROWS, COLS // 2), ROWS, COLS, "differential", None)
    graph = build_graph(1, hw.interconnect)
    net = Network(graph, True, 64, 1, chip.period_ps["interconnect"])
    model = ModelInfo(sizes=(ROWS, COLS // 2), sign_hidden=True, quantized=True, meta=False, levels=3)
    ledger = Ledger()
    return chip, mapping, Sim(chip, mapping, net, model, ledger, None), ledger


def test_one_mvm_on_one_tile_matches_the_hand_formula():
    hw = small_hw()
    chip, mapping, sim, ledger = one_tile_sim(hw)
    (tile,) = mapping.all_tiles()
    assert (tile.rows_used, tile.outputs, tile.physical_cols) == (ROWS, COLS // 2, COLS)
    slices = INPUT_BITS  # bit-serial, multi-bit (pixel) input
    op = chip.tile.mvm(tile.rows_used, tile.outputs, slices)

    # Hand formula (1 GHz: 1 cycle = 1 ns).
    t_dac, t_read, t_adc = 1, 1, ADC_BITS + 1          # NeuroSim SAR: (bits + 1) ns
    n_adc = math.ceil(COLS / COLS_PER_ADC)              # 8 ADCs
    rounds = math.ceil((COLS // 2) / n_adc)             # 16 outputs / 8 ADCs = 2 each
    read_cycles = slices * (t_dac + t_read)             # 8
    convert_cycles = slices * rounds * t_adc            # 56
    assert (op.read_cycles, op.convert_cycles) == (read_cycles, convert_cycles)

    sim.env.process(sim.tile_stream(tile, 1, op, "gbuf", 0, 0, 0, "eval", "mvm"))
    sim.env.run()
    assert sim.env.now == (read_cycles + convert_cycles) * 1000  # ps

    e_dac = 0.41667e-12                                 # ISAAC 1-bit DAC
    e_cell = 0.2**2 * G_MEAN * 1e-9                     # V^2 G t
    e_adc = 1.67e-12 * ISAAC_ADC_PJ[ADC_BITS] / ISAAC_ADC_PJ[8]
    e_sa = 0.021e-12
    expected = (
        slices * ROWS * e_dac
        + slices * ROWS * COLS * e_cell
        + slices * (COLS // 2) * e_adc
        + slices * (COLS // 2) * e_sa
    )
    energy = sum(ledger.energy_entries(chip.unit_energy).values())
    assert energy == pytest.approx(expected, rel=1e-12)
    assert ledger.counts[("adc", "convert", "eval")] == slices * (COLS // 2)


def test_tile_pipelines_images_read_overlaps_conversion():
    hw = small_hw()
    chip, mapping, sim, _ = one_tile_sim(hw)
    (tile,) = mapping.all_tiles()
    op = chip.tile.mvm(tile.rows_used, tile.outputs, INPUT_BITS)
    batch = 3
    sim.env.process(sim.tile_stream(tile, batch, op, "gbuf", 0, 0, 0, "eval", "mvm"))
    sim.env.run()
    # Conversion is the bottleneck stage: read the first image, then convert all three.
    assert sim.env.now == (op.read_cycles + batch * op.convert_cycles) * 1000


def test_binary_inputs_take_one_slice_and_multibit_dac_one_slice():
    hw = small_hw()
    chip = build_chip(hw, 3)
    assert chip.tile.dac.slices(binary_inputs=True) == 1
    assert chip.tile.dac.slices(binary_inputs=False) == INPUT_BITS
    multi = build_chip(small_hw(dac={"input_bits": 4, "mode": "multi_bit"}), 3)
    assert multi.tile.dac.slices(binary_inputs=False) == 1
    assert multi.unit_energy[("dac", "convert")] == pytest.approx(0.41667e-12 * 2**3)


def transfer_finish(topology: str, senders: list[str], bits: int, n_tiles: int = 4) -> int:
    hw = HardwareConfig.model_validate({"interconnect": {"topology": topology}})
    graph = build_graph(n_tiles, hw.interconnect)
    net = Network(graph, topology == "bus", 64, 1, 1000)
    env = simpy.Environment()
    links: dict = {}
    for s in senders:
        env.process(net.transfer(env, links, s, "dpu", bits))
    env.run()
    return env.now // 1000


def test_two_tiles_on_a_shared_bus_take_twice_as_long_as_one():
    bits = 640  # 10 cycles of a 64-bit bus + 1 cycle hop latency
    one = transfer_finish("bus", ["tile0"], bits)
    two = transfer_finish("bus", ["tile0", "tile1"], bits)
    assert one == 640 // 64 + 1
    assert two == 2 * one


def test_disjoint_mesh_paths_do_not_contend():
    # 6 endpoints on a 3-wide mesh: dpu(0,0) gbuf(1,0) tile0(2,0) / tile1(0,1) tile2(1,1) tile3(2,1)
    hw = HardwareConfig.model_validate({"interconnect": {"topology": "mesh", "mesh_columns": 3}})
    graph = build_graph(4, hw.interconnect)
    net = Network(graph, False, 64, 1, 1000)
    env = simpy.Environment()
    links: dict = {}
    env.process(net.transfer(env, links, "tile1", "dpu", 640))      # 1 hop
    env.process(net.transfer(env, links, "tile0", "gbuf", 640))     # 1 hop, other link
    env.run()
    assert env.now // 1000 == 640 // 64 + 1


def test_row_parallel_write_latency_is_sum_of_row_maxima():
    from archsim.engine.schedule import Engine
    from archsim.learning.storage import CommitReport

    hw = small_hw(programming={"pulse_time_s": 1e-8, "verify_time_s": 1e-9, "row_parallel": True})
    chip, mapping, _, _ = one_tile_sim(hw)
    graph = build_graph(1, hw.interconnect)
    net = Network(graph, True, 64, 1, 1000)
    model = ModelInfo(sizes=(ROWS, COLS // 2), sign_hidden=True, quantized=True, meta=False, levels=3)
    engine = Engine(chip, mapping, net, model, "exact", 0)
    changed = np.zeros((ROWS, COLS // 2), dtype=bool)
    pulses = np.zeros((ROWS, COLS // 2), dtype=np.int64)
    changed[0, :3] = True
    pulses[0, :3] = [1, 4, 2]      # row 0: max 4
    changed[5, 7] = True
    pulses[5, 7] = 3               # row 5: max 3
    plan, _ = engine.write_plan([CommitReport(changed=changed, pulses=pulses)])
    assert len(plan) == 1
    assert (plan[0].changes, plan[0].pulses, plan[0].steps) == (4, 10, 7)
    step_ns = 10 + 1 + (ADC_BITS + 1)  # pulse + verify read + ADC conversion
    assert chip.write.program_cycles(plan[0].steps) == 7 * step_ns

    serial = small_hw(programming={"pulse_time_s": 1e-8, "verify_time_s": 1e-9, "row_parallel": False})
    chip_s, mapping_s, _, _ = one_tile_sim(serial)
    engine_s = Engine(chip_s, mapping_s, net, model, "exact", 0)
    plan_s, _ = engine_s.write_plan([CommitReport(changed=changed, pulses=pulses)])
    assert plan_s[0].steps == 10


def test_compact_pulses_of_the_device_store_give_the_same_plan():
    from archsim.engine.schedule import Engine
    from archsim.learning.storage import CommitReport

    hw = small_hw()
    chip, mapping, _, _ = one_tile_sim(hw)
    net = Network(build_graph(1, hw.interconnect), True, 64, 1, 1000)
    model = ModelInfo(sizes=(ROWS, COLS // 2), sign_hidden=True, quantized=True, meta=False, levels=3)
    rng = np.random.default_rng(3)
    changed = rng.random((ROWS, COLS // 2)) < 0.2
    full = np.where(changed, rng.integers(1, 6, size=changed.shape), 0)
    compact = full.ravel()[np.flatnonzero(changed)]
    a, _ = Engine(chip, mapping, net, model).write_plan([CommitReport(changed, full)])
    b, _ = Engine(chip, mapping, net, model).write_plan([CommitReport(changed, compact)])
    assert a == b and a[0].pulses == int(full.sum())
    # row-parallel steps: sum over rows of the row maximum
    assert a[0].steps == int(full.max(axis=1).sum())


# ---- dataflow fixes of issue 15 -----------------------------------------------------------

def layer0_forward(delivery: str, topology: str = "tree"):
    """One eval batch of layer 0 (64 inputs -> 64 outputs on 64x32 tiles: 1 row block,
    4 column blocks) with the given input delivery; returns the ledger."""
    hw = small_hw(interconnect={"topology": topology, "input_delivery": delivery, "tree_arity": 2})
    chip = build_chip(hw, 3)
    mapping = map_network((ROWS, 2 * COLS), ROWS, COLS, "differential", None)
    assert len(mapping.all_tiles()) == 4 and mapping.layers[0].row_blocks == 1
    graph = build_graph(mapping.tiles_available, hw.interconnect)
    net = Network(graph, topology == "bus", 64, 1, chip.period_ps["interconnect"])
    model = ModelInfo(sizes=(ROWS, 2 * COLS), sign_hidden=True, quantized=True, meta=False, levels=3)
    ledger = Ledger()
    sim = Sim(chip, mapping, net, model, ledger, None)
    sim.env.process(sim.forward(2, "eval"))
    sim.env.run()
    return ledger, sim.env.now


@pytest.mark.parametrize("topology", ["tree", "mesh", "bus"])
def test_multicast_input_costs_one_buffer_read_and_fewer_bit_hops_than_unicast(topology):
    multi, t_multi = layer0_forward("multicast", topology)
    uni, t_uni = layer0_forward("unicast", topology)
    batch, bits = 2, ROWS * INPUT_BITS  # 64 pixels of 4 bits per image
    # one read of the global buffer per image with multicast, one per tile with unicast
    assert multi.counts[("global_buffer", "read_bit", "eval")] == batch * bits
    assert uni.counts[("global_buffer", "read_bit", "eval")] == 4 * batch * bits
    assert multi.counts[("interconnect", "bit_hop", "eval")] < uni.counts[("interconnect", "bit_hop", "eval")]
    assert t_multi <= t_uni


def test_multicast_on_a_tree_carries_shared_links_once():
    # arity-2 tree over 4 tiles: routers r0_0 (tile0, tile1), r0_1 (tile2, tile3), root r1_0
    hw = HardwareConfig.model_validate({"interconnect": {"topology": "tree", "tree_arity": 2}})
    net = Network(build_graph(4, hw.interconnect), False, 64, 1, 1000)
    tiles = tuple(f"tile{i}" for i in range(4))
    unicast_links = sum(net.route("gbuf", t).hops for t in tiles)
    tree = net.multicast_route("gbuf", tiles)
    assert unicast_links == 4 * 3          # gbuf-root, root-r0_x, r0_x-tile
    assert tree.hops == 1 + 2 + 4          # every link of the multicast tree once
    assert tree.latency_hops == 3          # the packet's time: its longest branch


def test_fixed_8_to_1_multiplexer_takes_4_rounds_on_a_half_used_tile():
    hw = small_hw(tile={"rows": 128, "cols": 128, "weight_encoding": "differential"},
                  adc={"bits": 8, "columns_per_adc": 8})
    tile = build_chip(hw, 3).tile
    # half the tile: 32 differential outputs on columns 0..63, i.e. ADCs 0..7 with 4 each;
    # ADCs 8..15 are hard-wired to unused columns and cannot help
    assert tile.adc.adcs_for(tile.cols) == 16
    half = tile.mvm(rows_used=128, outputs=32, slices=1)
    full = tile.mvm(rows_used=128, outputs=64, slices=1)
    t_adc = 9  # NeuroSim SAR, 8 bits: 9 ns at 1 GHz
    assert half.convert_cycles == 4 * t_adc
    assert full.convert_cycles == 4 * t_adc
    assert tile.mvm(128, 3, 1).convert_cycles == 3 * t_adc    # 3 outputs on one ADC
    # transposed read: rows sensed 8 per row-side ADC
    assert tile.mvm_transposed(rows_used=20, outputs=64, slices=1).convert_cycles == 8 * t_adc
    # reference encoding: one column per output, 8 outputs per ADC
    from dataclasses import replace

    from archsim.hw.encoding import weight_encoding

    ref = replace(tile, encoding=weight_encoding("reference"))
    assert ref.weights_per_row == 127
    assert ref.mvm(128, 32, 1).convert_cycles == 8 * t_adc


def test_one_place_defines_the_adc_the_tile_geometry_and_the_variants():
    from archsim.config import RunConfig, validate
    from archsim.engine import build_architecture
    from archsim.hw.converters import ADC_MODELS
    from archsim.hw.encoding import WEIGHT_ENCODINGS
    from archsim.interconnect.topology import TOPOLOGIES

    tree = {
        "tasks": [{"name": "mnist", "dataset": "mnist", "epochs": 1, "train_limit": 100}],
        "model": {"hidden": [100], "levels": 3},
        "learning": {"rule": "qnn-meta", "batch_size": 50},
        "hardware": {"tile": {"rows": 64, "cols": 64}, "adc": {"bits": 5, "columns_per_adc": 4}},
    }
    arch = build_architecture(validate(RunConfig, tree, "one-place"))
    # the functional model computes with the very tile (DAC, ADC) the cost model charges
    assert arch.mvm.tile is arch.chip.tile and arch.mvm.mapping is arch.mapping
    assert arch.chip.tile.adc.bits == 5
    # layer sizes and tile geometry: defined once, read by the mapping
    assert tuple(arch.config.model.layer_sizes) == (784, 100, 10)
    assert [m.outputs_per_tile for m in arch.mapping.layers] == [arch.chip.tile.weights_per_row] * 2
    # the ADC's transform follows its own settings: 5 bits -> 32 codes per partial sum
    ramp = np.linspace(-100, 100, 10001, dtype=np.float32)
    assert np.unique(arch.chip.tile.adc.quantize(ramp, 64, 1.0, 1.0)).size == 2**5
    # variants by name: the registries hold exactly what the configuration accepts
    from typing import get_args

    from archsim.config.hardware import InterconnectConfig, TileConfig

    assert set(WEIGHT_ENCODINGS.names()) == set(get_args(get_args(TileConfig.model_fields["weight_encoding"].annotation)[0]))
    assert set(TOPOLOGIES.names()) == set(get_args(InterconnectConfig.model_fields["topology"].annotation))
    assert "sar" in ADC_MODELS


def test_unknown_adc_model_is_one_clear_config_error():
    from archsim.errors import ConfigError

    with pytest.raises(ConfigError, match="hardware.adc.model = 'flash'.*sar"):
        build_chip(small_hw(adc={"model": "flash"}), 3)


def test_adding_an_adc_model_by_name():
    """The example of archsim/hw/README.md and docs/architecture.md §11, run."""
    from archsim.errors import ConfigError
    from archsim.hw.converters import ADC_MODELS, Adc

    @ADC_MODELS.register("flash")
    class FlashAdc(Adc):
        @classmethod
        def conversion_energy_j(cls, cfg, cmos_scale):
            return cfg.energy_per_conversion_j * (2**cfg.bits - 1) / (2**cfg.reference_bits - 1) * cmos_scale

        @classmethod
        def conversion_time_s(cls, cfg):
            if cfg.latency_s is None:
                raise ConfigError("a flash ADC needs hardware.adc.latency_s")
            return cfg.latency_s

    try:
        hw = small_hw(adc={"model": "flash", "bits": 4, "reference_bits": 8, "latency_s": 1e-9,
                           "energy_per_conversion_j": 2.55e-12, "columns_per_adc": COLS_PER_ADC})
        chip = build_chip(hw, 3)
        assert isinstance(chip.tile.adc, FlashAdc)
        assert chip.unit_energy[("adc", "convert")] == pytest.approx(2.55e-12 * 15 / 255)
        op = chip.tile.mvm(ROWS, COLS // 2, 1)
        assert op.convert_cycles == 2  # 2 rounds (4 columns = 2 pairs per ADC) of 1 ns
        # the transform is inherited: 4 bits -> 16 codes
        ramp = np.linspace(-100, 100, 1001, dtype=np.float32)
        assert np.unique(chip.tile.adc.quantize(ramp, ROWS, 1.0, 1.0)).size == 16
        with pytest.raises(ConfigError, match="latency_s"):
            build_chip(small_hw(adc={"model": "flash"}), 3)
    finally:
        ADC_MODELS.remove("flash")
