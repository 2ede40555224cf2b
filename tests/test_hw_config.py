"""Hardware descriptions: presets load and map, bad descriptions give one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from archsim.config import HardwareConfig, RunConfig, load_run_config, validate
from archsim.config.loader import read_yaml_mapping
from archsim.engine import build_architecture
from archsim.errors import ConfigError, MappingError
from archsim.mapping import check_network_fits, map_network, tiles_needed

REPO = Path(__file__).resolve().parent.parent
PRESETS = ("paper-130nm", "scaled-256-28nm")


def run_config(hidden: list[int], hardware: dict) -> RunConfig:
    tree = {
        "tasks": [{"name": "mnist", "dataset": "mnist", "epochs": 1}],
        "model": {"hidden": hidden, "levels": 3},
        "hardware": hardware,
    }
    return validate(RunConfig, tree, "test")


@pytest.mark.parametrize("name", PRESETS)
def test_presets_validate_and_hold_784_4096_10(name):
    tree = read_yaml_mapping(REPO / "hwconfigs" / f"{name}.yaml")
    hw = validate(HardwareConfig, tree, name)
    assert hw.name == name
    config = run_config([4096], tree)
    arch = build_architecture(config)
    assert arch.mapping.tiles_used <= arch.mapping.tiles_available
    assert arch.mvm is not None
    summary_keys = {"latency_cycles", "latency_s", "energy_j", "utilisation"}
    arch.engine.eval_batch(10)
    assert summary_keys <= set(arch.summary())


def test_paper_preset_is_128x128_at_130nm_with_the_device_preset():
    hw = validate(HardwareConfig, read_yaml_mapping(REPO / "hwconfigs" / "paper-130nm.yaml"), "p")
    assert (hw.tile.rows, hw.tile.cols, hw.technology.node_nm) == (128, 128, 130)
    assert hw.tile.count == tiles_needed((784, 4096, 10), 128, 128, "differential") == 480
    device = read_yaml_mapping(REPO / "hwconfigs" / "devices" / "hfo2-130nm.yaml")
    assert hw.device.model_dump() == validate(type(hw.device), device, "d").model_dump()


def test_preset_found_by_name_through_the_loader():
    config = load_run_config("paper-mnist-fmnist", "paper-130nm")
    assert config.hardware is not None and config.hardware.name == "paper-130nm"


@pytest.mark.parametrize(
    "hardware, key",
    [
        ({"tile": {"rows": 0}}, "tile.rows"),
        ({"tile": {"cols": 0}}, "tile.cols"),
        ({"adc": {"bits": 0}}, "adc.bits"),
        ({"dac": {"input_bits": 0}}, "dac.input_bits"),
        ({"clock": {"crossbar_hz": 0}}, "clock.crossbar_hz"),
        ({"interconnect": {"topology": "ring"}}, "interconnect.topology"),
        ({"dpu": {"hidden_precision": 1}}, "dpu.hidden_precision"),
    ],
)
def test_bad_fields_name_the_key(hardware, key):
    with pytest.raises(ConfigError) as err:
        run_config([64], hardware)
    message = str(err.value)
    assert f"hardware.{key}" in message and "\n" not in message


def test_unreachable_tile_is_rejected():
    hardware = {
        "tile": {"count": 3},
        "interconnect": {
            "topology": "custom",
            "custom_links": [["tile0", "dpu"], ["tile1", "dpu"], ["gbuf", "dpu"]],
        },
    }
    with pytest.raises(ConfigError, match="tile2 unreachable"):
        run_config([64], hardware)


def test_encoding_disagreeing_with_device_is_rejected():
    with pytest.raises(ConfigError, match="disagrees with device.mapping"):
        run_config([64], {"tile": {"weight_encoding": "reference"}, "device": {"mapping": "differential"}})


def test_network_larger_than_the_chip_raises_mapping_error():
    config = run_config([512], {"tile": {"rows": 128, "cols": 128, "count": 10}})
    with pytest.raises(MappingError) as err:
        build_architecture(config)
    message = str(err.value)
    with pytest.raises(MappingError):
        check_network_fits(config)
    # 784-512-10: 7 x 8 + 4 x 1 = 60 tiles
    assert "needs 60 tiles" in message and "has 10" in message and "\n" not in message


def test_sram_too_small_raises_mapping_error():
    config = run_config([64], {"dpu": {"sram_bits": 1000}})
    with pytest.raises(MappingError, match="SRAM holds 1000 bits"):
        build_architecture(config)


def test_mapping_utilisation_and_reference_encoding():
    m = map_network((784, 100, 10), 128, 128, "reference", None)
    # reference: 127 weight columns per tile -> 784-100: 7 x 1, 100-10: 1 x 1
    assert m.tiles_used == 8
    util = m.utilisation()
    assert util["weight_cells"] == 784 * 100 + 100 * 10
    assert util["reference_cells"] == 784 + 100  # one reference column per tile, over its used rows
    assert util["cell_utilisation_allocated"] == pytest.approx((784 * 100 + 1000) / (8 * 128 * 128), abs=1e-6)


SHIPPED_WORKLOADS = sorted(p.stem for p in (REPO / "workloads").glob("*.yaml"))
SHIPPED_HARDWARE = sorted(p.stem for p in (REPO / "hwconfigs").glob("*.yaml"))
TOO_BIG_FOR_THE_CHIP = {("bnn-baseline", "paper-130nm"), ("bnn-baseline", "scaled-256-28nm")}
"""784-4096-4096-10 needs more tiles than these chips have: a clean MappingError at load."""


def test_the_shipped_presets_are_all_found():
    assert {"paper-mnist-fmnist", "bnn-baseline", "smoke"} <= set(SHIPPED_WORKLOADS)
    assert {"paper-130nm", "hfo2-device", "ideal-device"} <= set(SHIPPED_HARDWARE)


@pytest.mark.parametrize("workload", SHIPPED_WORKLOADS)
@pytest.mark.parametrize("hardware", [None, *SHIPPED_HARDWARE])
def test_every_shipped_workload_loads_on_every_shipped_hardware(workload, hardware):
    """A preset edit that breaks validation fails here, not in a user's first run."""
    if (workload, hardware) in TOO_BIG_FOR_THE_CHIP:
        with pytest.raises(MappingError, match="tiles"):
            load_run_config(workload, hardware)
        return
    config = load_run_config(workload, hardware)
    assert config.tasks and config.name
    if hardware is not None:
        assert config.hardware is not None and config.hardware.name
