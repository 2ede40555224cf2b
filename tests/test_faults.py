"""Fault injection: fabrication stuck-at faults and devices wearing out mid-training.

Accuracy must degrade gracefully (a little for a few faults, more for many, never a crash or
NaN) and every run must report how many devices are faulty.
"""

from __future__ import annotations

import yaml

from archsim.config import load_run_config
from archsim.runner import execute
from tests.conftest import REPO


def small_workload(tmp_path) -> str:
    tree = yaml.safe_load((REPO / "workloads" / "smoke.yaml").read_text())
    tree["tasks"] = tree["tasks"][:1]
    tree["tasks"][0].update(epochs=2, train_limit=3000, test_limit=1000)
    tree["model"]["hidden"] = [96]
    tree["learning"]["optimizer"] = {"lr": 0.02}
    tree["data"]["validation_size"] = 500
    path = tmp_path / "w.yaml"
    path.write_text(yaml.safe_dump(tree))
    return str(path)


def run(tmp_path, *sets: str) -> dict:
    config = load_run_config(small_workload(tmp_path), "hfo2-device", list(sets))
    return execute(config)[0]


def test_stuck_at_faults_degrade_accuracy_gracefully(tmp_path):
    rates = [0.0, 0.01, 0.6]
    summaries = [
        run(tmp_path, "hardware.device.stuck_at_fault_rate=%g" % r, "hardware.device.endurance_model=none")
        for r in rates
    ]
    accuracy = [s["accuracy"]["after:mnist"]["mnist"] for s in summaries]
    stuck = [s["writes"]["stuck_devices"] for s in summaries]
    devices = summaries[0]["device"]["devices"]
    assert stuck[0] == 0
    for rate, count in zip(rates[1:], stuck[1:]):
        assert abs(count / devices - rate) < 0.2 * rate + 0.002  # the requested share is faulty
    assert accuracy[1] > accuracy[0] - 0.05  # 1 % faulty devices: small loss
    assert accuracy[2] < accuracy[0] - 0.03  # 60 %: a clear loss ...
    assert accuracy[2] > 0.3  # ... but still far above chance (10 %)


def test_devices_dying_mid_training_are_counted_and_training_goes_on(tmp_path):
    worn = run(
        tmp_path,
        "hardware.device.endurance_model=lognormal",
        "hardware.device.endurance_median_cycles=2",
        "hardware.device.endurance_sigma_ln=0.5",
        "hardware.device.stuck_state=g_max",  # a dead device shorts to its highest conductance
    )
    healthy = run(tmp_path, "hardware.device.endurance_model=none")
    assert worn["device"]["stuck_worn_out"] > 0
    assert worn["writes"]["stuck_devices"] >= worn["device"]["stuck_worn_out"]
    assert healthy["device"]["stuck_worn_out"] == 0
    acc_worn = worn["accuracy"]["after:mnist"]["mnist"]
    acc_healthy = healthy["accuracy"]["after:mnist"]["mnist"]
    # The digital unit keeps learning around the dead devices: a graceful, bounded loss.
    assert acc_healthy - 0.05 < acc_worn, (acc_worn, acc_healthy, worn["device"]["stuck_worn_out"])
