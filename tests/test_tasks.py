"""Task sequences: task kinds, sequence expansion, load-time checks and continual metrics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from archsim.config import RunConfig, load_run_config, validate
from archsim.config.workload import TaskConfig
from archsim.data.tasks import (
    TASK_KINDS,
    SourceSplits,
    chunk_bounds,
    load_source,
    load_task,
    pixel_permutation,
)
from archsim.errors import ConfigError
from archsim.metrics.continual import continual_metrics

REPO = Path(__file__).resolve().parent.parent


def tree(**changes) -> dict:
    base = {
        "name": "seq",
        "sequence": {"kind": "permuted", "dataset": "mnist", "n_tasks": 3, "epochs": 1, "seed": 1,
                     "train_limit": 600, "test_limit": 300},
        "model": {"hidden": [32], "levels": 3, "init_width": 1.0},
        "learning": {"rule": "qnn-meta", "m_star": 0.0, "optimizer": {"lr": 0.02}},
        "data": {"validation_size": 200},
    }
    for dotted, value in changes.items():
        node = base
        keys = dotted.split("__")
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        if value is None:
            node.pop(keys[-1], None)
        else:
            node[keys[-1]] = value
    return base


# --------------------------------------------------------------------------- metrics


def test_metrics_on_a_hand_made_matrix():
    # R[i][j]: accuracy on task j after task i; the upper triangle must be ignored.
    matrix = {
        "after:a": {"a": 0.90, "b": 0.10, "c": 0.12},
        "after:b": {"a": 0.80, "b": 0.95, "c": 0.11},
        "after:c": {"a": 0.60, "b": 0.85, "c": 0.97},
    }
    m = continual_metrics(matrix, ["a", "b", "c"])
    assert m.average_accuracy == pytest.approx((0.60 + 0.85 + 0.97) / 3)
    # BWT = ((0.60 - 0.90) + (0.85 - 0.95)) / 2
    assert m.backward_transfer == pytest.approx(-0.20)
    # f_a = max(0.90, 0.80) - 0.60, f_b = 0.95 - 0.85
    assert m.forgetting == pytest.approx({"a": 0.30, "b": 0.10})
    assert m.average_forgetting == pytest.approx(0.20)
    assert m.accuracy_when_learned == {"a": 0.90, "b": 0.95, "c": 0.97}


def test_forgetting_uses_the_best_earlier_accuracy_not_the_first():
    matrix = {
        "after:a": {"a": 0.50},
        "after:b": {"a": 0.70, "b": 0.90},
        "after:c": {"a": 0.65, "b": 0.90, "c": 0.80},
    }
    m = continual_metrics(matrix, ["a", "b", "c"])
    assert m.forgetting["a"] == pytest.approx(0.05)  # 0.70 - 0.65, not 0.50 - 0.65
    assert m.backward_transfer == pytest.approx(((0.65 - 0.50) + 0.0) / 2)


def test_metrics_of_one_task_have_no_transfer():
    m = continual_metrics({"after:a": {"a": 0.9}}, ["a"])
    assert m.average_accuracy == 0.9
    assert m.backward_transfer is None and m.average_forgetting is None and m.forgetting == {}


def test_metrics_reject_a_matrix_with_a_hole():
    with pytest.raises(ValueError, match="after:b"):
        continual_metrics({"after:a": {"a": 0.9}, "after:b": {"b": 0.8}}, ["a", "b"])


# --------------------------------------------------------------------------- task kinds


def fake_source(n_train=100, n_val=20, n_test=50) -> SourceSplits:
    rng = np.random.default_rng(0)
    def images(n):
        return rng.integers(0, 256, size=(n, 784), dtype=np.uint8)
    def labels(n):
        return np.arange(n, dtype=np.uint8) % 10
    return SourceSplits(images(n_train), labels(n_train), images(n_val), labels(n_val),
                        images(n_test), labels(n_test))


def task(**fields) -> TaskConfig:
    return TaskConfig(**{"name": "t", "dataset": "mnist", "epochs": 1, **fields})


def test_permuted_task_reorders_pixels_with_its_seeded_permutation():
    source = fake_source()
    plain = TASK_KINDS["dataset"].build(task(), source)
    permuted = TASK_KINDS["permuted"].build(task(kind="permuted", seed=5), source)
    order = pixel_permutation(5)
    assert sorted(order) == list(range(784))
    np.testing.assert_array_equal(permuted.test_x, plain.test_x[:, order])
    np.testing.assert_array_equal(permuted.train_y, plain.train_y)
    assert np.array_equal(pixel_permutation(5), order)
    assert not np.array_equal(pixel_permutation(6), order)
    assert permuted.train_x.dtype == np.float32 and 0 <= permuted.train_x.min() <= permuted.train_x.max() <= 1


def test_split_task_keeps_its_classes_and_relabels_within_the_task():
    source = fake_source()
    kept = TASK_KINDS["split"].build(task(kind="split", classes=[3, 7]), source)
    assert set(kept.train_y) == {3, 7} and set(kept.test_y) == {3, 7} and set(kept.val_y) == {3, 7}
    assert kept.train_y.size == 20
    relabelled = TASK_KINDS["split"].build(task(kind="split", classes=[7, 3], relabel=True), source)
    np.testing.assert_array_equal(relabelled.train_y, np.where(kept.train_y == 7, 0, 1))
    np.testing.assert_array_equal(relabelled.train_x, kept.train_x)


def test_stream_chunks_partition_the_training_and_test_sets():
    source = fake_source(n_train=103, n_test=50)
    chunks = [TASK_KINDS["stream-chunk"].build(task(kind="stream-chunk", seed=2, chunk=k, chunks=4), source)
              for k in range(4)]
    train = np.concatenate([c.train_images for c in chunks])
    assert train.shape[0] == 103
    # Every training image exactly once (rows are random, so compare as sets of rows).
    assert sorted(map(bytes, train)) == sorted(map(bytes, source.train_images))
    assert [c.train_y.size for c in chunks] == [25, 26, 26, 26]
    np.testing.assert_array_equal(np.concatenate([c.test_images for c in chunks]), source.test_images)
    assert chunk_bounds(10, 0, 3) == (0, 3) and chunk_bounds(10, 2, 3) == (6, 10)


def test_real_permuted_task_from_the_dataset():
    t = task(kind="permuted", seed=1, train_limit=300, test_limit=100)
    data = load_task(t, None, 1000)
    source = load_source("mnist", None, 1000)
    assert data.train_x.shape == (300, 784) and data.test_x.shape == (100, 784) and data.val_y.size == 1000
    np.testing.assert_array_equal(data.train_images, source.train_images[:300])


# --------------------------------------------------------------------------- sequences and config


def load(t: dict) -> RunConfig:
    return validate(RunConfig, t, "seq.yaml")


def test_permuted_sequence_expands_to_named_seeded_tasks():
    config = load(tree(sequence__n_tasks=6))
    assert [t.name for t in config.tasks] == ["p1", "p2", "p3", "p4", "p5", "p6"]
    assert [t.seed for t in config.tasks] == [1, 2, 3, 4, 5, 6]
    assert all(t.kind == "permuted" and t.train_limit == 600 for t in config.tasks)
    assert config.sequence is None  # expanded: config.yaml lists the tasks
    first = load(tree(sequence__first_identity=True)).tasks[0]
    assert first.kind == "dataset" and first.seed is None


def test_split_and_stream_sequences():
    split = load(tree(sequence__kind="split", sequence__n_tasks=5)).tasks
    assert [t.classes for t in split] == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
    assert [t.name for t in split] == ["c01", "c23", "c45", "c67", "c89"]
    stream = load(tree(sequence__kind="stream", sequence__n_tasks=4, model__bn_per_task=False,
                       learning__optimizer__reset_between_tasks=False)).tasks
    assert [(t.chunk, t.chunks, t.seed) for t in stream] == [(k, 4, 1) for k in range(4)]


def test_resolved_config_round_trips():
    config = load(tree())
    again = load(yaml.safe_load(yaml.safe_dump(config.model_dump(mode="json"))))
    assert again == config


BAD = {
    "tasks and sequence": (dict(tasks=[{"name": "a", "dataset": "mnist", "epochs": 1}]), "not both"),
    "no tasks": (dict(sequence=None), "no tasks"),
    "zero tasks": (dict(sequence__n_tasks=0), "sequence.n_tasks"),
    "split into 3": (dict(sequence__kind="split"), "1, 2, 5 or 10"),
    "unknown sequence kind": (dict(sequence__kind="rotated"), "sequence.kind"),
    "identity first of a split": (dict(sequence__kind="split", sequence__n_tasks=5,
                                       sequence__first_identity=True), "first_identity"),
    "stream with task batch-norm": (dict(sequence__kind="stream", model__bn_per_task=True,
                                         learning__optimizer__reset_between_tasks=False), "bn_per_task: false"),
    "stream with fresh optimizer": (dict(sequence__kind="stream"), "reset_between_tasks: false"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_sequences_fail_at_load_with_one_line(case):
    changes, expected = BAD[case]
    with pytest.raises(ConfigError) as err:
        load(tree(**changes))
    message = str(err.value)
    assert expected in message and "\n" not in message


BAD_TASKS = {
    "unknown kind": ({"kind": "rotated"}, "unknown task kind 'rotated'"),
    "permuted without seed": ({"kind": "permuted"}, "needs 'seed'"),
    "split without classes": ({"kind": "split"}, "needs 'classes'"),
    "class out of range": ({"kind": "split", "classes": [3, 12]}, "0..9"),
    "repeated class": ({"kind": "split", "classes": [3, 3]}, "repeat"),
    "seed on a split": ({"kind": "split", "classes": [1], "seed": 3}, "'seed' has no meaning"),
    "relabel on a plain task": ({"relabel": True}, "'relabel' has no meaning"),
    "chunk past the end": ({"kind": "stream-chunk", "seed": 0, "chunk": 4, "chunks": 4}, "0..3"),
}


@pytest.mark.parametrize("case", list(BAD_TASKS))
def test_bad_tasks_fail_at_load_naming_the_task(case):
    fields, expected = BAD_TASKS[case]
    t = tree(sequence=None)
    t["tasks"] = [{"name": "a", "dataset": "mnist", "epochs": 1, **fields}]
    with pytest.raises(ConfigError) as err:
        load(t)
    assert "tasks.0" in str(err.value) and expected in str(err.value)


def test_shipped_permuted_workload_loads_six_tasks():
    config = load_run_config("permuted-mnist")
    assert len(config.tasks) == 6 and len({t.seed for t in config.tasks}) == 6
    assert config.evaluate_unseen_tasks


# --------------------------------------------------------------------------- runs


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "archsim.cli", *args], capture_output=True, text=True,
                          cwd=REPO, env=dict(os.environ), timeout=300)


def test_cli_prints_the_full_matrix_and_continual_metrics(tmp_path):
    workload = tmp_path / "seq.yaml"
    workload.write_text(yaml.safe_dump(tree(evaluate_unseen_tasks=True)))
    proc = run_cli("run", str(workload), "--out", str(tmp_path / "run"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    rows = [line for line in lines if line.startswith("after:")]
    assert [r.split()[0] for r in rows] == ["after:p1", "after:p2", "after:p3"]
    assert all(len(r.split()) == 4 for r in rows)  # every task after every task
    assert any(line.startswith("average accuracy after the last task:") for line in lines)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    final = summary["accuracy"]["after:p3"]
    assert summary["continual"]["test"]["average_accuracy"] == pytest.approx(
        sum(final.values()) / 3, abs=1e-6)
    assert set(summary["continual"]["test"]["forgetting"]) == {"p1", "p2"}
    assert "validation" in summary["continual"]


def test_task_sequence_runs_on_the_chip(tmp_path):
    from archsim.runner import execute

    t = tree(sequence__train_limit=300, sequence__test_limit=100, data__validation_size=100)
    config = validate(RunConfig, {**t, "hardware": yaml.safe_load(
        (REPO / "hwconfigs" / "paper-130nm.yaml").read_text())}, "seq.yaml")
    summary, result, hardware = execute(config)
    assert list(summary["accuracy"]) == ["after:p1", "after:p2", "after:p3"]
    assert summary["latency_cycles"]["total"] > 0 and summary["energy_j"]["total"] > 0
    assert summary["writes"]["total"] > 0
    assert summary["continual"]["test"]["backward_transfer"] is not None


@pytest.mark.slow
def test_metaplasticity_forgets_less_on_permuted_mnist(tmp_path):
    """The shipped permuted-MNIST workload: m* = 0 forgets measurably more than the shipped m*."""
    forgetting = {}
    for label, extra in (("shipped", []), ("m0", ["--set", "learning.m_star=0"])):
        out = tmp_path / label
        proc = run_cli("run", "permuted-mnist", "--out", str(out), "--quiet", *extra)
        assert proc.returncode == 0, proc.stderr
        summary = json.loads((out / "summary.json").read_text())
        assert len(summary["accuracy"]) == 6 and all(len(r) == 6 for r in summary["accuracy"].values())
        forgetting[label] = summary["continual"]["test"]["average_forgetting"]
    assert forgetting["m0"] > forgetting["shipped"] + 0.05, forgetting


def test_progress_total_counts_the_images_each_kind_trains_on():
    from archsim.data.tasks import expected_train_images

    assert expected_train_images(task(), 55000) == 55000
    assert expected_train_images(task(train_limit=100), 55000) == 100
    assert expected_train_images(task(kind="split", classes=[0, 1]), 55000) == 11000
    chunk = task(kind="stream-chunk", seed=0, chunk=2, chunks=3)
    assert expected_train_images(chunk, 100) == 34


def test_sequence_without_test_set_reports_validation_metrics(tmp_path):
    workload = tmp_path / "seq.yaml"
    workload.write_text(yaml.safe_dump(tree(data__evaluate_test=False)))
    proc = run_cli("run", str(workload), "--out", str(tmp_path / "run"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "average validation accuracy after the last task:" in proc.stdout
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["accuracy"] == {} and list(summary["continual"]) == ["validation"]
