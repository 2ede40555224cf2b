"""Property: any configuration is either rejected when loaded or runs to finite metrics."""

from __future__ import annotations

import math

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from archsim.config import load_run_config
from archsim.errors import ConfigError, MappingError
from archsim.runner import execute

from tests.conftest import REPO

numbers = st.one_of(
    st.integers(-3, 12),
    st.floats(-1.0, 10.0, allow_nan=False),
    st.just(float("nan")),
    st.just(float("inf")),
)

overrides = st.fixed_dictionaries(
    {},
    optional={
        "model.levels": st.integers(-1, 9),
        "model.hidden": st.lists(st.integers(-2, 24), min_size=0, max_size=2),
        "model.init_width": numbers,
        "learning.m_star": numbers,
        "learning.rule": st.sampled_from(["qnn-meta", "bnn-meta", "float32", "adamw"]),
        "learning.batch_size": st.integers(-1, 80),
        "learning.optimizer.lr": numbers,
        "hardware.tile.rows": st.integers(-1, 300),
        "hardware.tile.cols": st.integers(-1, 300),
        "hardware.tile.count": st.one_of(st.none(), st.integers(-1, 400)),
        "hardware.adc.bits": st.integers(-1, 12),
        "hardware.adc.columns_per_adc": st.integers(-1, 16),
        "hardware.dac.input_bits": st.integers(-1, 10),
        "hardware.device.read_noise_sigma": numbers,
        "hardware.interconnect.topology": st.sampled_from(["bus", "mesh", "tree", "star"]),
    },
)


def tiny_workload(tmp_path) -> str:
    tree = yaml.safe_load((REPO / "workloads" / "smoke.yaml").read_text())
    for task in tree["tasks"]:
        task.update(epochs=1, train_limit=120, test_limit=60)
    tree["model"]["hidden"] = [16]
    tree["data"]["validation_size"] = 60
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(tree))
    return str(path)


def finite_numbers(tree) -> bool:
    if isinstance(tree, dict):
        return all(finite_numbers(v) for v in tree.values())
    if isinstance(tree, list):
        return all(finite_numbers(v) for v in tree)
    if isinstance(tree, float):
        return math.isfinite(tree)
    return True


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changes=overrides, with_hardware=st.booleans())
def test_config_is_rejected_at_load_or_runs_to_finite_metrics(tmp_path, changes, with_hardware):
    sets = [f"{key}={yaml.safe_dump(value, default_flow_style=True).strip().removesuffix('...').strip()}"
            for key, value in changes.items()
            if with_hardware or not key.startswith("hardware.")]
    try:
        config = load_run_config(tiny_workload(tmp_path), "paper-130nm" if with_hardware else None, sets)
    except (ConfigError, MappingError) as exc:
        assert "\n" not in str(exc) and str(exc)
        return
    summary, _, _ = execute(config)
    assert finite_numbers(summary)
    for row in summary["accuracy"].values():
        assert all(0.0 <= acc <= 1.0 for acc in row.values())
    if with_hardware:
        assert summary["energy_j"]["total"] > 0
        assert summary["latency_cycles"]["total"] > 0
