"""Build the chip's component instances from a HardwareConfig.

All CMOS energies are scaled from their source node/supply to ``technology`` with
:func:`archsim.hw.scaling.energy_scale`; device physics (cell read V^2 G t, programming
pulses) is not scaled. ``unit_energy`` is the ledger's table of J per action unit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from archsim.config.hardware import HardwareConfig
from archsim.hw.converters import Adc, Dac
from archsim.hw.dpu import Dpu, Sram
from archsim.hw.encoding import weight_encoding
from archsim.hw.programming import WriteVerify
from archsim.hw.scaling import energy_scale
from archsim.hw.tile import Tile


@dataclass
class Chip:
    """Components plus the per-action energy table and the clocks."""

    hw: HardwareConfig
    tile: Tile
    dpu: Dpu
    sram: Sram
    write: WriteVerify
    unit_energy: dict[tuple[str, str], float]
    leakage_w: dict[str, float]
    clock_hz: dict[str, float]
    period_ps: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.period_ps = {k: max(1, round(1e12 / f)) for k, f in self.clock_hz.items()}


def device_attr(hw: HardwareConfig, name: str, default: float) -> float:
    """A device-model parameter if the device description has it, else ``default``."""
    return float(getattr(hw.device, name, default))


def build_chip(hw: HardwareConfig, levels: int) -> Chip:
    tech = hw.technology

    def scale(node: float, vdd: float) -> float:
        return energy_scale(tech.energy_scaling, node, tech.node_nm, vdd, tech.vdd_v)

    f_x = hw.clock.crossbar_hz
    f_d = hw.clock.dpu_hz or f_x
    f_n = hw.clock.interconnect_hz or f_x

    dac = Dac.from_config(hw.dac, f_x, scale(hw.dac.reference_node_nm, hw.dac.reference_vdd_v))
    adc = Adc.from_config(hw.adc, f_x, scale(hw.adc.reference_node_nm, hw.adc.reference_vdd_v))
    e_dac, e_adc, t_adc = dac.unit_energy_j["convert"], adc.unit_energy_j["convert"], adc.latency_s
    e_sample = hw.adc.sample_energy_j * scale(hw.adc.reference_node_nm, hw.adc.reference_vdd_v)

    g_mean = hw.crossbar.mean_cell_conductance_s
    if g_mean is None:
        g_mean = (device_attr(hw, "g_min_s", 1e-6) + device_attr(hw, "g_max_s", 4e-5)) / 2
    # Ohmic energy of one cell at the read voltage for one read pulse: V^2 G t.
    e_cell = hw.crossbar.read_voltage_v**2 * g_mean * hw.crossbar.read_time_s
    tile_scale = scale(hw.tile.reference_node_nm, hw.tile.reference_vdd_v)
    e_shift = hw.tile.shift_add_energy_j * tile_scale
    tile = Tile(hw.tile.rows, hw.tile.cols, weight_encoding(hw.weight_encoding), dac, adc, f_x,
                hw.crossbar.read_time_s, e_cell, e_shift, hw.tile.leakage_w * tile_scale)

    dpu_scale = scale(hw.dpu.reference_node_nm, hw.dpu.reference_vdd_v)
    bits = hw.dpu.hidden_bits
    if hw.dpu.hidden_precision == "float32":
        e_add, e_mult = hw.dpu.float_add_energy_j, hw.dpu.float_mult_energy_j
    else:
        e_add = hw.dpu.int32_add_energy_j * bits / 32
        e_mult = hw.dpu.int32_mult_energy_j * (bits / 32) ** 2
    dpu = Dpu("dpu", f_d, {"add": e_add * dpu_scale, "mult": e_mult * dpu_scale},
              hw.dpu.leakage_w * dpu_scale, mac_units=hw.dpu.mac_units, hidden_bits=bits)
    sram = Sram("sram", f_d, {
        "read_bit": hw.dpu.sram_read_energy_per_bit_j * dpu_scale,
        "write_bit": hw.dpu.sram_write_energy_per_bit_j * dpu_scale,
    })

    pulse_time = hw.programming.pulse_time_s or device_attr(hw, "pulse_width_s", 1e-8)
    verify_time = (
        hw.programming.verify_time_s
        if hw.programming.verify_time_s is not None
        else device_attr(hw, "verify_time_s", 1e-9)
    )
    address_bits = hw.programming.address_bits or max(1, math.ceil(math.log2(hw.tile.rows * hw.tile.cols)))
    write = WriteVerify(hw.programming.pulse_energy_j, pulse_time, verify_time, t_adc,
                        hw.programming.row_parallel, f_x, address_bits,
                        max(1, math.ceil(math.log2(max(levels, 2)))))

    g_scale = scale(hw.global_buffer.reference_node_nm, hw.global_buffer.reference_vdd_v)
    n_scale = scale(hw.interconnect.reference_node_nm, hw.interconnect.reference_vdd_v)
    unit = {
        ("dac", "convert"): e_dac,
        ("crossbar", "read_cell"): e_cell,
        ("adc", "convert"): e_adc,
        ("sample_hold", "sample"): e_sample,
        ("shift_add", "add"): e_shift,
        ("programming", "pulse"): hw.programming.pulse_energy_j,
        ("programming", "pulse_device"): 0.0,
        ("programming", "verify_cell"): e_cell,
        ("adc", "verify_convert"): e_adc,
        ("dpu", "add"): dpu.unit_energy_j["add"],
        ("dpu", "mult"): dpu.unit_energy_j["mult"],
        ("sram", "read_bit"): sram.unit_energy_j["read_bit"],
        ("sram", "write_bit"): sram.unit_energy_j["write_bit"],
        ("global_buffer", "read_bit"): hw.global_buffer.read_energy_per_bit_j * g_scale,
        ("global_buffer", "write_bit"): hw.global_buffer.write_energy_per_bit_j * g_scale,
        ("interconnect", "bit_hop"): hw.interconnect.energy_per_bit_j * n_scale,
    }
    leakage = {
        "tile": tile.leakage_w,  # per powered tile
        "dpu": dpu.leakage_w,
        "sram_per_bit": hw.dpu.sram_leakage_w_per_mbit * dpu_scale / 1e6,
        "global_buffer": hw.global_buffer.leakage_w * g_scale,
        "interconnect": hw.interconnect.leakage_w * n_scale,
    }
    return Chip(hw, tile, dpu, sram, write, unit, leakage,
                {"crossbar": f_x, "dpu": f_d, "interconnect": f_n})
