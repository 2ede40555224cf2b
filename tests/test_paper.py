"""The paper's experiment at full scale (slow: `python3 -m pytest -m slow`).

D'Agostino et al. 2023 report 97 % on MNIST and 86 % on Fashion-MNIST after consecutive
training, for m* in [2, 4]. These tests run `workloads/paper-mnist-fmnist.yaml` as shipped
(m* = 3) and at the other ends of the range; README "Results" has the measured numbers.
Here the pair is reached for m* in [3, 4]; below that the first task is kept less well
(m* = 2.5: 95.8 %, m* = 2: 90.9 %), which the trade-off test pins down.
"""

from __future__ import annotations

import pytest

from archsim.config import load_run_config
from archsim.experiment import run_experiment

pytestmark = pytest.mark.slow

WORKLOAD = "workloads/paper-mnist-fmnist.yaml"


def final_accuracy(m_star: float) -> dict[str, float]:
    result = run_experiment(load_run_config(WORKLOAD, overrides=[f"learning.m_star={m_star}"]))
    return result.accuracy["after:fashion"]


@pytest.mark.parametrize("m_star", [3.0, 4.0])
def test_metaplastic_qnn_learns_both_tasks(m_star):
    final = final_accuracy(m_star)
    assert final["mnist"] >= 0.965, final
    assert final["fashion"] >= 0.855, final


def test_weaker_consolidation_trades_retention_for_the_new_task():
    weak, strong = final_accuracy(2.0), final_accuracy(4.0)
    assert weak["mnist"] < strong["mnist"] - 0.03, (weak, strong)
    assert weak["fashion"] > strong["fashion"], (weak, strong)


def test_without_metaplasticity_the_first_task_is_forgotten():
    result = run_experiment(load_run_config(WORKLOAD, overrides=["learning.m_star=0"]))
    drop = result.accuracy["after:mnist"]["mnist"] - result.accuracy["after:fashion"]["mnist"]
    assert drop >= 0.20, result.accuracy


def test_bnn_meta_retains_the_first_task_far_better_than_without_metaplasticity():
    """Laborieux et al. 2021 on one 1024 layer, 8 epochs per task (DESIGN.md §2 setting)."""

    def retained(m: float) -> float:
        config = load_run_config(
            WORKLOAD,
            overrides=[
                "learning.rule=bnn-meta", f"learning.m_star={m}", "model.levels=2",
                "model.hidden=[1024]", "model.init_width=0.1",
                "learning.optimizer.weight_decay=1e-7",  # Laborieux et al.'s value
                "tasks=[{name: mnist, dataset: mnist, epochs: 8}, {name: fashion, dataset: fashion-mnist, epochs: 8}]",
            ],
        )
        return run_experiment(config).accuracy["after:fashion"]["mnist"]

    plain, meta = retained(0.0), retained(1.5)
    assert meta > plain + 0.15, (plain, meta)
