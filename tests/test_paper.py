"""The paper's experiment at full scale (slow: `python3 -m pytest -m slow`).

D'Agostino et al. 2023 report 97 % on MNIST and 86 % on Fashion-MNIST after consecutive
training. These tests run `workloads/paper-mnist-fmnist.yaml` as shipped (settings chosen on
the validation split only, docs/learning-rules.md) over several seeds and assert on seed
means, never on one seed: the paper's pair at the shipped m*, the forgetting without
metaplasticity, and the trade-off across the window m* in [2, 4]. Each (m*, seed) is trained
once per test session (cached). The committed per-seed numbers are results/paper-seeds.csv.
"""

from __future__ import annotations

from functools import cache
from statistics import mean

import pytest

from archsim.config import load_run_config
from archsim.experiment import run_experiment

pytestmark = pytest.mark.slow

WORKLOAD = "workloads/paper-mnist-fmnist.yaml"
SEEDS = (0, 1, 2)
WINDOW_SEEDS = (0, 1)


@cache
def accuracy_matrix(m_star: float, seed: int) -> dict[str, dict[str, float]]:
    config = load_run_config(WORKLOAD, overrides=[f"learning.m_star={m_star}"], seed=seed)
    return run_experiment(config).accuracy


def shipped_m_star() -> float:
    return load_run_config(WORKLOAD).learning.m_star


def mean_final(m_star: float, seeds: tuple[int, ...]) -> dict[str, float]:
    finals = [accuracy_matrix(m_star, s)["after:fashion"] for s in seeds]
    return {task: mean(f[task] for f in finals) for task in ("mnist", "fashion")}


def test_pair_as_a_mean_over_seeds_at_the_shipped_m_star():
    final = mean_final(shipped_m_star(), SEEDS)
    assert final["mnist"] >= 0.965, final
    assert final["fashion"] >= 0.855, final


def test_without_metaplasticity_mnist_falls_20_points_on_average():
    drops = [accuracy_matrix(0.0, s)["after:mnist"]["mnist"] - accuracy_matrix(0.0, s)["after:fashion"]["mnist"]
             for s in SEEDS]
    assert mean(drops) >= 0.20, drops


def test_weaker_consolidation_trades_retention_for_the_new_task_on_average():
    weak, strong = mean_final(2.0, WINDOW_SEEDS), mean_final(4.0, WINDOW_SEEDS)
    assert weak["mnist"] < strong["mnist"], (weak, strong)
    assert weak["fashion"] > strong["fashion"], (weak, strong)


def test_bnn_meta_retains_the_first_task_far_better_than_without_metaplasticity():
    """Laborieux et al. 2021 on one 1024 layer, 8 epochs per task (as in Laborieux et al.'s public code, Laborieux-Axel/SynapticMetaplasticityBNN)."""

    def retained(m: float) -> float:
        config = load_run_config(
            WORKLOAD,
            overrides=[
                "learning.rule=bnn-meta", f"learning.m_star={m}", "model.levels=2",
                "model.hidden=[1024]", "model.init_width=0.2",
                "learning.optimizer.weight_decay=1e-7",  # Laborieux et al.'s value
                "tasks=[{name: mnist, dataset: mnist, epochs: 8}, {name: fashion, dataset: fashion-mnist, epochs: 8}]",
            ],
        )
        return run_experiment(config).accuracy["after:fashion"]["mnist"]

    plain, meta = retained(0.0), retained(1.5)
    assert meta > plain + 0.15, (plain, meta)
