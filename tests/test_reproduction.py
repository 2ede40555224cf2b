"""Issue 16: validation-only selection, per-seed table, matched-size memory, k-bit hidden
weights, stored batch-norm statistics and the initial-weight range.

Everything trains tiny networks on small subsets (well under a minute in all).
"""

from __future__ import annotations

import csv
import json
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from archsim.config import load_run_config, validate, RunConfig
from archsim.errors import ConfigError
from archsim.experiment import build_learner, run_experiment, seed_streams
from archsim.learning.batchnorm import MOMENTUM, RunningStatistics
from archsim.learning.network import Mlp
from archsim.learning.precision import FixedPointHidden
from archsim.metrics import memory as memory_module
from archsim.metrics.memory import MatchedNetwork, matched_comparison_lines, memory_section
from archsim.metrics.reproduction import hidden_bits_table, memory_table, read_sweep, seeds_table, select_setting
from archsim.sweep.execute import run_sweep
from archsim.sweep.store import flatten

from conftest import tiny_config

REPO = Path(__file__).resolve().parent.parent

TINY = {
    "name": "tiny",
    "tasks": [
        {"name": "mnist", "dataset": "mnist", "epochs": 1, "train_limit": 300, "test_limit": 200},
        {"name": "fashion", "dataset": "fashion-mnist", "epochs": 1, "train_limit": 300, "test_limit": 200},
    ],
    "model": {"hidden": [16], "levels": 3, "init_width": 2.0, "bn_per_task": True},
    "learning": {"rule": "qnn-meta", "m_star": 2.0, "batch_size": 100},
    "data": {"validation_size": 200},
}


def write_sweep(folder: Path, name: str, **fields) -> Path:
    (folder / "tiny.yaml").write_text(yaml.safe_dump(TINY))
    spec = {"name": name, "workload": "tiny.yaml", "output": str(folder / name), **fields}
    path = folder / f"{name}.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


# -- 1. validation only ----------------------------------------------------------------------
def test_evaluate_test_false_never_reads_the_test_set(monkeypatch):
    import archsim.data.tasks as tasks  # where every task's data set is read

    real = tasks.load_split

    def no_test(dataset, split, data_dir=None):
        assert split != "test", "the test set was read"
        return real(dataset, split, data_dir)

    monkeypatch.setattr(tasks, "load_split", no_test)
    result = run_experiment(tiny_config(data__evaluate_test=False, tasks=TINY["tasks"]))
    assert result.accuracy == {}
    assert set(result.validation_accuracy["after:fashion"]) == {"mnist", "fashion"}


def test_no_test_and_no_validation_is_a_config_error():
    with pytest.raises(ConfigError, match="validation_size"):
        tiny_config(data__evaluate_test=False, data__validation_size=0)


def test_selection_sweep_picks_by_the_written_rule_and_refuses_test_scores(tmp_path):
    spec = write_sweep(tmp_path, "sel", set={"data.evaluate_test": False},
                       grid={"learning.optimizer.weight_decay": [1e-7, 1e-6], "learning.m_star": [2.0, 3.0, 4.0]})
    report = run_sweep(spec, serial=True)
    assert report.ok == 6
    sweep = read_sweep(tmp_path / "sel")
    chosen, ranked = select_setting(sweep)
    frame = sweep.frame
    # Recompute the rule by hand: min over m* of min(MNIST after both - 96.5, Fashion - 85.5).
    scores = {}
    for wd, group in frame.groupby("learning.optimizer.weight_decay"):
        worse = np.minimum(100 * group["validation_accuracy.after:fashion.mnist"] - 96.5,
                           100 * group["validation_accuracy.after:fashion.fashion"] - 85.5)
        scores[wd] = worse.min()
    best = max(scores, key=scores.get)
    assert chosen.setting == {"learning.optimizer.weight_decay": best}
    assert chosen.score == pytest.approx(scores[best])
    assert [c.score for c in ranked] == sorted((c.score for c in ranked), reverse=True)
    out = subprocess.run([sys.executable, "-m", "archsim.cli", "select", str(tmp_path / "sel")],
                         capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "chosen: learning.optimizer.weight_decay=" in out.stdout and "data.evaluate_test=true" in out.stdout
    # The committed form: one row per point, and `archsim select TABLE.csv` chooses the same.
    table = tmp_path / "selection.csv"
    made = subprocess.run([sys.executable, "-m", "archsim.cli", "table", "selection", str(tmp_path / "sel"),
                           "--out", str(table)], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert made.returncode == 0, made.stderr
    rows = pd.read_csv(table)
    assert len(rows) == 6 and rows["command"].str.startswith("archsim run ").all()
    from_csv = subprocess.run([sys.executable, "-m", "archsim.cli", "select", str(table)],
                              capture_output=True, text=True, cwd=REPO, timeout=120)
    assert from_csv.returncode == 0, from_csv.stderr
    assert from_csv.stdout.splitlines()[1:-1] == out.stdout.splitlines()[1:-1]  # same table, same choice

    scored = write_sweep(tmp_path, "scored", grid={"learning.m_star": [2.0, 3.0, 4.0]})
    run_sweep(scored, serial=True)
    with pytest.raises(ConfigError, match="scored the test set"):
        select_setting(read_sweep(tmp_path / "scored"))


# -- 1. seeds: sweep points reproduce archsim run exactly ---------------------------------------
def test_seeds_table_rows_reproduce_with_their_command(tmp_path):
    spec = write_sweep(tmp_path, "seeds", set={"tasks.*.epochs": 1},
                       grid={"learning.m_star": [0.0, 2.0]}, seeds=[0, 3])
    assert run_sweep(spec, serial=True).ok == 4
    table = seeds_table([tmp_path / "seeds"])
    assert list(table.columns) == ["seed", "m_star", "hardware", "mnist_after_mnist", "mnist_after_fashion",
                                   "fashion_after_fashion", "writes_total", "command", "commit"]
    assert len(table) == 4 and set(table["hardware"]) == {"none"}
    row = table[(table["seed"] == 3) & (table["m_star"] == 2.0)].iloc[0]
    assert "--seed 3" in row["command"] and "learning.m_star=2.0" in row["command"]
    assert row["commit"] != ""
    # Run the row's command exactly as written; its summary must match the sweep's point.
    argv = shlex.split(row["command"])
    assert argv[:2] == ["archsim", "run"]
    out_dir = tmp_path / "rerun"
    proc = subprocess.run([sys.executable, "-m", "archsim.cli", "run", *argv[2:], "--out", str(out_dir), "--quiet"],
                          capture_output=True, text=True, cwd=REPO, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rerun = flatten(json.loads((out_dir / "summary.json").read_text()))
    point = read_sweep(tmp_path / "seeds").frame
    point = point[(point["seed"] == 3) & (point["learning.m_star"] == 2.0)].iloc[0]
    for key in ("accuracy.after:fashion.mnist", "accuracy.after:fashion.fashion", "writes.total",
                "validation_accuracy.after:mnist.mnist"):
        assert rerun[key] == point[key], key
    assert round(100 * rerun["accuracy.after:fashion.mnist"], 2) == row["mnist_after_fashion"]


# -- 2. memory ------------------------------------------------------------------------------
def test_memory_counts_adam_moments_and_says_the_bnn_is_assumed(monkeypatch, tmp_path):
    monkeypatch.setattr(memory_module, "MATCHED_CSV", tmp_path / "absent.csv")
    config = load_run_config("paper-mnist-fmnist")
    section = memory_section(config)
    assert section["optimizer_state"] == 64 * section["weights"]
    assert section["total_with_optimizer"] == section["total"] + section["optimizer_state"]
    assert section["bnn_network"] == "784-4096-4096-10" and section["bnn_source"].startswith("assumed")
    assert "not measured yet" in " ".join(matched_comparison_lines())


def test_memory_uses_the_measured_bnn_when_the_table_exists(monkeypatch, tmp_path):
    rows = [
        {"rule": "bnn-meta", "levels": 2, "hidden": "1024-1024", "val_mnist_after_fashion": 96.9,
         "val_fashion_after_fashion": 86.0, "reaches_pair": True, "command": "x"},
        {"rule": "bnn-meta", "levels": 2, "hidden": "512", "val_mnist_after_fashion": 90.0,
         "val_fashion_after_fashion": 86.0, "reaches_pair": False, "command": "x"},
        {"rule": "qnn-meta", "levels": 4, "hidden": "1024", "val_mnist_after_fashion": 97.0,
         "val_fashion_after_fashion": 86.0, "reaches_pair": True, "command": "x"},
    ]
    for row, m in zip(rows, (5.0, 5.0, 2.0)):
        row["m_star"] = m
    path = tmp_path / "memory-matched.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    monkeypatch.setattr(memory_module, "MATCHED_CSV", path)
    section = memory_section(load_run_config("paper-mnist-fmnist"))
    assert section["bnn_network"] == "784-1024-1024-10" and section["bnn_source"].startswith("measured")
    text = "\n".join(matched_comparison_lines())
    qnn_bits = MatchedNetwork("qnn-meta", 4, (1024,), 97, 86, True, "x").footprint().total
    bnn_bits = MatchedNetwork("bnn-meta", 2, (1024, 1024), 97, 86, True, "x").footprint().total
    assert f"measured saving {bnn_bits / qnn_bits:.2f}x" in text
    assert "QNN qnn-meta 784-1024-10 (L = 4, m* = 2)" in text and "784-1024-1024-10 (L = 2, m* = 5)" in text


def test_memory_table_from_a_size_sweep(tmp_path):
    spec = write_sweep(tmp_path, "sizes", set={"data.evaluate_test": False},
                       grid={"model.hidden": [[8], [16, 16]]})
    run_sweep(spec, serial=True)
    table = memory_table([tmp_path / "sizes"])
    assert list(table["hidden"]) == ["8", "16-16"]
    assert (table["bits_with_optimizer"] > table["bits_total"]).all()
    assert not table["reaches_pair"].any()  # tiny networks on 300 images


def test_memory_table_keeps_each_m_star_of_a_size_apart_and_averages_seeds(tmp_path):
    """A sweep over sizes and m* (the BNN's m chosen on validation) gives one row per (size,
    m*), each the mean over its seeds, never a mean over different m*."""
    spec = write_sweep(tmp_path, "sizes-m", set={"data.evaluate_test": False},
                       grid={"model.hidden": [[8]], "learning.m_star": [0.0, 3.0]}, seeds=[0, 1])
    run_sweep(spec, serial=True)
    table = memory_table([tmp_path / "sizes-m"])
    assert list(table["m_star"]) == [0.0, 3.0] and list(table["seeds"]) == [2, 2]
    frame = read_sweep(tmp_path / "sizes-m").frame
    for m, row in zip((0.0, 3.0), table.itertuples()):
        column = frame[frame["learning.m_star"] == m]["validation_accuracy.after:fashion.mnist"]
        assert row.val_mnist_after_fashion == round(100 * column.mean(), 2)


# -- 3. k-bit hidden weights ------------------------------------------------------------------
def test_fixed_point_grid_nearest_and_stochastic():
    values = np.array([0.3, -0.26, 1.99, -2.5, 0.0], dtype=np.float32)
    nearest = values.copy()
    FixedPointHidden(4, 2.0)(nearest)  # step 0.25, range [-2, 1.75]
    np.testing.assert_array_equal(nearest, [0.25, -0.25, 1.75, -2.0, 0.0])
    many = np.full(20000, 0.1, dtype=np.float32)
    FixedPointHidden(4, 2.0, stochastic=True, rng=np.random.default_rng(0))(many)
    assert set(np.unique(many)) == {0.0, 0.25}
    assert abs(many.mean() - 0.1) < 0.01  # unbiased in expectation
    again = np.full(20000, 0.1, dtype=np.float32)
    FixedPointHidden(4, 2.0, stochastic=True, rng=np.random.default_rng(0))(again)
    np.testing.assert_array_equal(many, again)


def test_32_bit_hidden_weights_learn_like_float_and_3_bits_do_not():
    def trained(**overrides):
        config = tiny_config(tasks=TINY["tasks"], **overrides)
        rngs = seed_streams(config.seed)
        learner = build_learner(config, rngs["init"], rngs["device"], rounding_rng=rngs["rounding"])
        x = np.random.default_rng(1).random((300, 784), dtype=np.float32)
        y = np.random.default_rng(2).integers(0, 10, 300)
        learner.train_epochs(x, y, 2, 100, rngs["shuffle"])
        return learner.net.hidden[0]

    float_weights = trained()
    np.testing.assert_allclose(trained(learning__hidden_weight_bits=32), float_weights, atol=1e-6)
    narrow = trained(learning__hidden_weight_bits=3)
    assert np.abs(narrow - float_weights).max() > 0.1
    assert len(np.unique(narrow)) <= 8


def test_hidden_bits_table_one_row_per_width_and_rounding_with_its_command(tmp_path):
    """The k-bit curve's table: two sweeps (one per rounding, a shared 4-bit point run in
    both) give one row per configuration, float32 last, each with a command that rebuilds
    it; a sweep that also varies something else is refused."""
    nearest = write_sweep(tmp_path, "nearest", set={"data.evaluate_test": False, "learning.hidden_rounding": "nearest"},
                          grid={"learning.hidden_weight_bits": [4, None]})
    stochastic = write_sweep(tmp_path, "stochastic", set={"data.evaluate_test": False},
                             grid={"learning.hidden_weight_bits": [4], "learning.hidden_rounding": ["stochastic", "nearest"]})
    assert run_sweep(nearest, serial=True).ok == 2 and run_sweep(stochastic, serial=True).ok == 2
    table = hidden_bits_table([tmp_path / "nearest", tmp_path / "stochastic"])
    assert list(table["hidden_weight_bits"]) == ["4", "float32", "4"]
    assert list(table["hidden_rounding"]) == ["nearest", "none", "stochastic"]
    frame = read_sweep(tmp_path / "stochastic").frame
    point = frame[frame["learning.hidden_rounding"] == "stochastic"].iloc[0]
    row = table.iloc[2]
    assert row["val_fashion_after_fashion"] == round(100 * point["validation_accuracy.after:fashion.fashion"], 2)
    assert row["writes_total"] == point["writes.total"] and row["dpu_bits"] == point["memory_bits.dpu"]
    assert "learning.hidden_weight_bits=4" in row["command"] and "learning.hidden_rounding=stochastic" in row["command"]
    assert table.iloc[1]["dpu_bits"] > table.iloc[0]["dpu_bits"]  # float32 hidden weights hold more bits
    assert not table["reaches_pair"].any()  # tiny networks on 300 images
    sizes = write_sweep(tmp_path, "sizes", set={"data.evaluate_test": False},
                        grid={"learning.hidden_weight_bits": [4], "model.hidden": [[8], [16]]})
    run_sweep(sizes, serial=True)
    with pytest.raises(ConfigError, match="also varies model.hidden"):
        hidden_bits_table([tmp_path / "sizes"])


def test_hidden_weight_format_has_one_source_of_truth():
    with pytest.raises(ConfigError, match="hidden_precision"):
        load_run_config("smoke", "paper-130nm", ["learning.hidden_weight_bits=8"])
    follows = load_run_config("smoke", "paper-130nm", ["hardware.dpu.hidden_precision=16"])
    assert follows.hidden_weight_bits == 16 and memory_section(follows)["hidden_bits"] == 16
    both = load_run_config("smoke", "paper-130nm", ["hardware.dpu.hidden_precision=8",
                                                    "learning.hidden_weight_bits=8"])
    assert both.hidden_weight_bits == 8
    assert load_run_config("smoke", overrides=["learning.hidden_weight_bits=12"]).hidden_weight_bits == 12
    assert load_run_config("smoke").hidden_weight_bits is None


# -- 4. batch-norm with stored statistics ---------------------------------------------------------
def test_running_statistics_follow_torch_batchnorm1d():
    stats = RunningStatistics.create((4, 3))
    pre = np.random.default_rng(0).normal(2.0, 3.0, (50, 3)).astype(np.float32)
    normalized, _ = stats.normalize(0, pre, 1e-5)
    np.testing.assert_allclose(normalized.mean(axis=0), 0, atol=1e-5)  # training: batch statistics
    np.testing.assert_allclose(stats.mean[0], MOMENTUM * pre.mean(axis=0), rtol=1e-5)
    np.testing.assert_allclose(stats.var[0], (1 - MOMENTUM) + MOMENTUM * pre.var(axis=0, ddof=1), rtol=1e-4)
    stats.frozen = True
    one = stats.normalize(0, pre[:1], 1e-5)[0]
    np.testing.assert_allclose(one, (pre[:1] - stats.mean[0]) / np.sqrt(stats.var[0] + 1e-5), rtol=1e-5)


def test_running_mode_classifies_each_image_on_its_own():
    config = tiny_config(tasks=TINY["tasks"], model__batchnorm_eval="running", model__bn_per_task=True)
    rngs = seed_streams(0)
    learner = build_learner(config, rngs["init"], rngs["device"])
    x = np.random.default_rng(1).random((200, 784), dtype=np.float32)
    y = np.random.default_rng(2).integers(0, 10, 200)
    learner.train_epochs(x, y, 1, 100, rngs["shuffle"])
    state = learner.net.batch_norm_state()
    assert len(state) == 4  # scale, shift, running mean, running variance
    whole = learner.evaluate(x[:40], y[:40], 40)
    singles = [learner.evaluate(x[i : i + 1], y[i : i + 1], 2) for i in range(40)]
    assert whole == pytest.approx(np.mean(singles))
    assert learner.net.bn_stats.frozen is False  # evaluation leaves training mode intact
    result = run_experiment(config)
    assert 0.0 <= result.accuracy["after:fashion"]["mnist"] <= 1.0


# -- 5. initial weights -------------------------------------------------------------------------
def test_init_width_is_laborieux_total_width():
    net = Mlp.create((784, 512, 10), 0.1, np.random.default_rng(0))
    assert np.abs(net.hidden[0]).max() <= 0.05 and np.abs(net.hidden[0]).max() > 0.049
    assert load_run_config("paper-mnist-fmnist").model.init_width == 0.2  # U(-0.1, 0.1), as measured


def test_seeds_summary_pairs_chip_and_software_by_seed():
    import pandas as pd

    from archsim.metrics.reproduction import preset_or_path, seeds_summary

    rows = [{"seed": s, "m_star": 3.0, "hardware": hw, "mnist_after_mnist": 97.0,
             "mnist_after_fashion": 96.0 + s + (0.5 if hw != "none" else 0.0),
             "fashion_after_fashion": 86.0, "writes_total": 1, "command": "", "commit": ""}
            for s in range(3) for hw in ("none", "paper-130nm")]
    text = seeds_summary(pd.DataFrame(rows))
    assert "paper-130nm - software, mnist_after_fashion: +0.50 ± 0.00 (paired over 3 seeds)" in text
    assert "97.00 ± 0.00" in text and "97.00 ± 1.00" in text  # software MNIST after Fashion: 96, 97, 98
    assert preset_or_path(str(REPO / "hwconfigs" / "paper-130nm.yaml"), "hwconfigs") == "paper-130nm"


def test_a_byte_identical_copy_of_a_preset_is_named_as_the_preset(tmp_path):
    """A sweep run from another checkout records that checkout's path; an identical copy is the
    preset, an edited copy or another name stays a path."""
    from archsim.metrics.reproduction import preset_or_path

    shipped = REPO / "workloads" / "paper-mnist-fmnist.yaml"
    copy = tmp_path / "paper-mnist-fmnist.yaml"
    copy.write_bytes(shipped.read_bytes())
    assert preset_or_path(str(copy), "workloads") == "paper-mnist-fmnist"
    copy.write_bytes(shipped.read_bytes() + b"# edited\n")
    assert preset_or_path(str(copy), "workloads") == str(copy)
    renamed = tmp_path / "mine.yaml"
    renamed.write_bytes(shipped.read_bytes())
    assert preset_or_path(str(renamed), "workloads") == str(renamed)


def test_select_on_a_folder_that_is_no_sweep_is_one_clean_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "archsim.cli", "select", str(tmp_path)],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().startswith("archsim: error:") and "not a finished sweep folder" in proc.stderr


def test_shipped_paper_workload_is_the_committed_validation_only_choice():
    """workloads/paper-mnist-fmnist.yaml must hold what the rule picks from the committed
    selection table (results/paper-selection.csv): editing one without the other fails here."""
    from archsim.metrics.reproduction import select_from_table

    chosen, _, frame = select_from_table(REPO / "results" / "paper-selection.csv")
    assert len(frame) == 72
    shipped = load_run_config("paper-mnist-fmnist")
    assert chosen.setting == {
        "tasks.0.epochs": shipped.tasks[0].epochs,
        "tasks.1.epochs": shipped.tasks[1].epochs,
        "learning.optimizer.weight_decay": shipped.learning.optimizer.weight_decay,
        "model.hidden": list(shipped.model.hidden),
    }
    assert chosen.best_m_star() == shipped.learning.m_star


def test_committed_paper_seeds_rows_rebuild_the_shipped_workload():
    """Every row of results/paper-seeds.csv is a run of the shipped workload at its seed and m*
    (its command rebuilds that configuration), and every chip row has its software twin."""
    from archsim.metrics.reproduction import SEEDS_COLUMNS, RunCommand

    rows = pd.read_csv(REPO / "results" / "paper-seeds.csv")
    assert list(rows.columns) == SEEDS_COLUMNS and len(rows) > 0
    shipped = load_run_config("paper-mnist-fmnist").model_dump(mode="json")
    for _, row in rows.iterrows():
        command = RunCommand.parse(row["command"])
        assert command.workload == "paper-mnist-fmnist", row["command"]
        assert (command.hardware or "none") == row["hardware"]
        config = load_run_config(command.workload, command.hardware, list(command.sets), command.seed)
        assert config.seed == row["seed"] and config.learning.m_star == row["m_star"]
        dumped = config.model_dump(mode="json")
        for section in ("tasks", "model", "data"):
            assert dumped[section] == shipped[section], (row["command"], section)
        assert dumped["learning"] | {"m_star": 0} == shipped["learning"] | {"m_star": 0}, row["command"]
    software = set(zip(rows.loc[rows.hardware == "none", "seed"], rows.loc[rows.hardware == "none", "m_star"]))
    chip = rows[rows.hardware != "none"]
    assert set(zip(chip["seed"], chip["m_star"])) <= software


def test_committed_memory_matched_rows_rebuild_their_runs_and_the_comparison_reads_them():
    """Every row of results/memory-matched.csv is a validation-only run of the shipped workload
    at its rule, levels, m* and size (its command rebuilds that configuration), its verdict and
    footprint follow from its numbers, and `archsim memory`'s comparison names the smallest
    network of each rule that reaches the pair."""
    from archsim.metrics.memory import read_matched, smallest_reaching, weight_count
    from archsim.metrics.reproduction import FASHION_BAR, MEMORY_COLUMNS, MNIST_BAR, RunCommand

    path = REPO / "results" / "memory-matched.csv"
    rows = pd.read_csv(path)
    assert list(rows.columns) == MEMORY_COLUMNS and set(rows["rule"]) == {"qnn-meta", "bnn-meta"}
    shipped = load_run_config("paper-mnist-fmnist").model_dump(mode="json")
    for _, row in rows.iterrows():
        command = RunCommand.parse(row["command"])
        assert command.workload == "paper-mnist-fmnist" and command.hardware is None, row["command"]
        config = load_run_config(command.workload, None, list(command.sets), command.seed)
        assert not config.data.evaluate_test, row["command"]  # chosen on validation only
        assert config.learning.rule == row["rule"] and config.model.levels == row["levels"]
        assert config.learning.m_star == row["m_star"]
        assert "-".join(map(str, config.model.hidden)) == str(row["hidden"])
        assert config.model_dump(mode="json")["tasks"] == shipped["tasks"], row["command"]
        sizes = (784, *config.model.hidden, 10)
        assert row["weights"] == weight_count(sizes)
        assert row["reaches_pair"] == (row["val_mnist_after_fashion"] >= MNIST_BAR
                                       and row["val_fashion_after_fashion"] >= FASHION_BAR)
    matched = read_matched(path)
    text = "\n".join(matched_comparison_lines(matched))
    for rule in ("qnn-meta", "bnn-meta"):
        best = smallest_reaching(matched, rule)
        assert best is not None and f"{rule} {best.name} (L = {best.levels}, m* = {best.m_star:g})" in text
        assert best.footprint().total == int(rows[(rows["rule"] == rule) & (rows["hidden"].astype(str) == "-".join(
            map(str, best.hidden))) & (rows["m_star"] == best.m_star)]["bits_total"].iloc[0])
    qnn, bnn = (smallest_reaching(matched, rule).footprint().total for rule in ("qnn-meta", "bnn-meta"))
    assert f"measured saving {bnn / qnn:.2f}x" in text
    assert ("no saving: at matched accuracy the QNN holds" in text) == (bnn < qnn)


def test_committed_hidden_bits_rows_rebuild_their_runs():
    """Every row of results/hidden-bits.csv is a validation-only run of the shipped workload
    that differs from it only in the hidden-weight width and rounding its cells name; its
    verdict follows from its numbers and its DPU holds k bits per weight."""
    from archsim.metrics.memory import weight_count
    from archsim.metrics.reproduction import FASHION_BAR, HIDDEN_BITS_COLUMNS, MNIST_BAR, RunCommand

    rows = pd.read_csv(REPO / "results" / "hidden-bits.csv", dtype={"hidden_weight_bits": str})
    assert list(rows.columns) == HIDDEN_BITS_COLUMNS and len(rows) >= 10
    assert {"nearest", "stochastic"} <= set(rows["hidden_rounding"])
    shipped = load_run_config("paper-mnist-fmnist").model_dump(mode="json")
    weights = weight_count((784, *shipped["model"]["hidden"], 10))
    for _, row in rows.iterrows():
        command = RunCommand.parse(row["command"])
        assert command.workload == "paper-mnist-fmnist" and command.hardware is None, row["command"]
        config = load_run_config(command.workload, None, list(command.sets), command.seed).model_dump(mode="json")
        assert config["data"]["evaluate_test"] is False, row["command"]  # validation only
        bits = config["learning"]["hidden_weight_bits"]
        assert row["hidden_weight_bits"] == ("float32" if bits is None else str(bits))
        if bits is not None:
            assert config["learning"]["hidden_rounding"] == row["hidden_rounding"]
            assert row["dpu_bits"] == weights * bits
        for section in ("model", "tasks", "seed"):
            assert config[section] == shipped[section], (section, row["command"])
        learning = {k: v for k, v in config["learning"].items() if k not in ("hidden_weight_bits", "hidden_rounding")}
        assert learning == {k: v for k, v in shipped["learning"].items() if k in learning}
        assert row["reaches_pair"] == (row["val_mnist_after_fashion"] >= MNIST_BAR
                                       and row["val_fashion_after_fashion"] >= FASHION_BAR)


def test_seeds_table_keeps_each_variant_of_a_sweep_apart(tmp_path):
    """A sweep varying more than m* and the seed (the batch-norm variants) gets a column per
    swept key, and the summary's means never mix two variants."""
    from archsim.metrics.reproduction import seeds_summary

    spec = write_sweep(tmp_path, "variants", grid={"model.batchnorm_eval": ["batch", "running"]}, seeds=[0, 1])
    assert run_sweep(spec, serial=True).ok == 4
    table = seeds_table([tmp_path / "variants"])
    assert list(table.columns[:4]) == ["seed", "m_star", "hardware", "model.batchnorm_eval"]
    assert list(table["model.batchnorm_eval"]) == ["batch", "batch", "running", "running"]
    lines = seeds_summary(table).splitlines()
    assert len(lines) == 3 and lines[1].split()[2] == "2" and lines[1].endswith("batch") and lines[2].endswith("running")


def test_committed_bn_variant_rows_rebuild_their_runs():
    """results/paper-bn-variants.csv: each row's variant cells are what its command sets, on
    the chip, test set scored; the per-task / batch-statistics rows are the shipped run."""
    from archsim.metrics.reproduction import RunCommand

    rows = pd.read_csv(REPO / "results" / "paper-bn-variants.csv", dtype=str)
    assert len(rows) == 8 and set(rows["seed"]) == {"0", "1"}
    for _, row in rows.iterrows():
        command = RunCommand.parse(row["command"])
        assert command.hardware == "paper-130nm" and str(command.seed) == row["seed"]
        config = load_run_config(command.workload, command.hardware, list(command.sets), command.seed)
        assert json.dumps(config.model.bn_per_task) == row["model.bn_per_task"]
        assert config.model.batchnorm_eval == row["model.batchnorm_eval"]
        assert config.data.evaluate_test
    shipped = rows[(rows["model.bn_per_task"] == "true") & (rows["model.batchnorm_eval"] == "batch")]
    seeds = pd.read_csv(REPO / "results" / "paper-seeds.csv", dtype=str)
    chip = seeds[(seeds["hardware"] == "paper-130nm") & seeds["seed"].isin(["0", "1"])]
    columns = ["seed", "mnist_after_mnist", "mnist_after_fashion", "fashion_after_fashion", "writes_total"]
    assert shipped[columns].sort_values("seed").values.tolist() == chip[columns].sort_values("seed").values.tolist()
