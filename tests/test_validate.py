"""`archsim validate`, the area model and the validation designs' link to the chip model."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest

from archsim.config.hardware import HardwareConfig
from archsim.hw.area import chip_area, tile_area
from archsim.hw.chip import build_chip
from archsim.interconnect.topology import build_graph
from archsim.validate import check_design, load_design, predict, shipped_designs
from archsim.validate.design import Design


def test_validate_command_prints_every_design_within_tolerance():
    env = dict(os.environ)
    result = subprocess.run([sys.executable, "-m", "archsim.cli", "validate"], capture_output=True,
                            text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    designs = shipped_designs()
    assert {p.stem for p in designs} >= {"isaac", "neurram", "puma"}
    for path in designs:
        design = load_design(path)
        assert f"{design.name}: " in result.stdout
        for check in check_design(design):
            assert check.passed, (design.name, check.figure.metric, check.ratio)
            if check.figure.deviation is None:
                assert abs(check.ratio - 1) <= check.figure.tolerance
    assert "FAIL" not in result.stdout


def test_validate_exits_nonzero_when_a_figure_misses(tmp_path):
    text = (shipped_designs()[0]).read_text()
    bad = tmp_path / "bad.yaml"
    # ISAAC's published IMA power doubled: the prediction is now off by 2x
    bad.write_text(text.replace("published: 24.08", "published: 48.16"))
    result = subprocess.run([sys.executable, "-m", "archsim.cli", "validate", str(bad)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "FAIL" in result.stdout


def isaac() -> Design:
    return load_design(next(p for p in shipped_designs() if p.stem == "isaac"))


def test_prediction_goes_through_the_chip_model():
    design = isaac()
    prediction = predict(design)
    chip = build_chip(design.hardware, levels=2)
    op = chip.tile.mvm(128, 127, 16)
    expected = sum(n * chip.unit_energy[(c, a)] for c, a, n in op.counts)
    assert math.isclose(sum(prediction.energy_by_component_j.values()), expected)
    # a change to one hardware input moves the prediction by exactly that component
    hw = design.hardware.model_copy(update={"adc": design.hardware.adc.model_copy(
        update={"energy_per_conversion_j": 2 * design.hardware.adc.energy_per_conversion_j})})
    doubled = predict(design.model_copy(update={"hardware": hw}))
    assert math.isclose(doubled.energy_by_component_j["adc"], 2 * prediction.energy_by_component_j["adc"])
    # ISAAC: 128 columns share one ADC at 1.28 GS/s, 16 slices -> about 1.6 us per MVM convert stage
    assert op.convert_cycles == 16 * 127  # 127 weight columns + the reference column


def test_puma_prices_leakage_and_composes_the_node_area():
    design = load_design(next(p for p in shipped_designs() if p.stem == "puma"))
    prediction = predict(design)
    chip = build_chip(design.hardware, levels=2)
    op = chip.tile.mvm(128, 127, 16)
    # one ADC per crossbar: 16 reads of 128 cycles, 16 x 127 conversions of 1 cycle
    assert (op.read_cycles, op.convert_cycles) == (16 * 128, 16 * 127)
    interval_s = max(op.read_cycles, op.convert_cycles) * 1e-9
    e_mvm = sum(n * chip.unit_energy[(c, a)] for c, a, n in op.counts)
    leak_w = design.hardware.tile.leakage_w
    assert leak_w > 0 and math.isclose(chip.leakage_w["tile"], leak_w)
    # the MVMU's static power is charged over the MVM interval, next to its action energies
    expected = 8 * (e_mvm / interval_s + leak_w) / (8 * 4096 / interval_s)
    assert math.isclose(prediction.metrics["energy_per_op_j"], expected)
    node = 2208 * 8 * tile_area(chip).total_um2 / 1e6 + design.operating_point.chip_extra_area_mm2
    assert math.isclose(prediction.metrics["chip_area_mm2"], node)


def test_tile_area_counts_instances_and_scales_with_the_node():
    hw = HardwareConfig()
    chip = build_chip(hw, 3)
    area = tile_area(chip)
    node_um = hw.technology.node_nm * 1e-3
    assert math.isclose(area.um2["crossbar"], 128 * 128 * hw.tile.cell_area_f2 * node_um**2)
    adcs = 128 // hw.adc.columns_per_adc
    assert area.instances["adc"] == adcs
    scale = (hw.technology.node_nm / hw.adc.reference_node_nm) ** 2
    assert math.isclose(area.um2["adc"], adcs * hw.adc.area_um2 * scale)
    # two more ADC bits: 4x the ADC area (Accelergy's 2^bits rule)
    wider = build_chip(hw.model_copy(update={"adc": hw.adc.model_copy(update={"bits": 10})}), 3)
    assert math.isclose(tile_area(wider).um2["adc"], 4 * area.um2["adc"])
    # half the feature size: a quarter of every area
    small = hw.model_copy(update={"technology": hw.technology.model_copy(update={"node_nm": 65.0})})
    small_area = tile_area(build_chip(small, 3))
    for name, um2 in area.um2.items():
        assert math.isclose(small_area.um2[name], um2 / 4), name


def test_chip_area_sums_components_and_counts_routers():
    hw = HardwareConfig.model_validate({"interconnect": {"topology": "tree", "tree_arity": 4}})
    chip = build_chip(hw, 3)
    report = chip_area(chip, tiles=16, sram_bits=1_000_000)
    by = report.by_component_mm2
    assert math.isclose(report.total_mm2, sum(by.values()))
    assert math.isclose(by["crossbar"], 16 * tile_area(chip).um2["crossbar"] / 1e6)
    graph = build_graph(16, hw.interconnect)
    routers = sum(1 for _, k in graph.nodes(data="kind") if k == "router")
    assert routers == 5  # 4 leaf routers + 1 root
    scale = (hw.technology.node_nm / hw.interconnect.reference_node_nm) ** 2
    width = hw.interconnect.link_width_bits
    expected = (routers * hw.interconnect.router_area_um2 * width / 256
                + graph.number_of_edges() * width * hw.interconnect.link_area_um2_per_bit) * scale
    assert math.isclose(by["interconnect"], expected / 1e6)
    assert math.isclose(by["sram"], 1e6 * hw.dpu.sram_cell_area_f2 * (hw.technology.node_nm * 1e-3) ** 2 / 1e6)
    assert report.as_dict()["total"] == report.total_mm2


def test_per_vector_conversion_converts_once_per_output():
    hw = HardwareConfig.model_validate({"adc": {"conversion": "per_vector"}})
    tile = build_chip(hw, 3).tile
    counts = {(c, a): n for c, a, n in tile.mvm(128, 64, 8).counts}
    assert counts[("adc", "convert")] == 64
    assert counts[("sample_hold", "sample")] == 8 * 64
    per_slice = build_chip(HardwareConfig(), 3).tile
    assert {(c, a): n for c, a, n in per_slice.mvm(128, 64, 8).counts}[("adc", "convert")] == 8 * 64


def test_a_deviation_needs_its_ratio_band(tmp_path):
    from archsim.errors import ConfigError

    text = (shipped_designs()[0]).read_text().replace(
        "    unit: mW\n", "    unit: mW\n    deviation: because\n", 1)
    path = tmp_path / "d.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="deviation"):
        load_design(path)


def test_run_summary_reports_area_from_the_chip(tmp_path):
    from archsim.config import load_run_config
    from archsim.engine.architecture import build_architecture
    from archsim.summary import ARCHITECTURE_TOP_LEVEL

    config = load_run_config("smoke", "paper-130nm", ["model.hidden=[64]"])
    arch = build_architecture(config)
    area = arch.summary()["area_mm2"]
    assert "area_mm2" in ARCHITECTURE_TOP_LEVEL  # summary.json carries it at the top level
    expected = chip_area(arch.chip, arch.mapping.tiles_available, arch.sram_bits)
    assert math.isclose(area["total"], expected.total_mm2)
    assert area["tiles"] == 480
    assert set(area["by_component"]) >= {"crossbar", "adc", "dac", "sample_hold", "shift_add", "dpu",
                                         "sram", "global_buffer", "interconnect"}
    assert math.isclose(sum(area["by_component"].values()), area["total"])
