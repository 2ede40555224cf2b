"""The real CLI in a subprocess: good runs write complete results; bad inputs fail cleanly.

Every bad input must give exactly one line ``archsim: error: ...`` on stderr naming the
problem, the documented exit code, no traceback, and no result folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
SMOKE = REPO / "workloads" / "smoke.yaml"


def archsim(*args: str, cwd: Path | None = None, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "archsim.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd or REPO,
        env={**os.environ, **(env or {})},
        timeout=300,
    )


def write_workload(tmp_path: Path, **changes) -> Path:
    tree = yaml.safe_load(SMOKE.read_text())
    for task in tree["tasks"]:
        task.update(train_limit=300, test_limit=200, epochs=1)
    tree["model"]["hidden"] = [32]
    tree["data"]["validation_size"] = 100
    for key, value in changes.items():
        tree[key] = value
    path = tmp_path / "workload.yaml"
    path.write_text(yaml.safe_dump(tree))
    return path


def test_run_writes_summary_and_resolved_config(tmp_path):
    workload = write_workload(tmp_path)
    out = tmp_path / "run"
    proc = archsim("run", str(workload), "--out", str(out), "--seed", "7", "--quiet")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["accuracy"]) == {"after:mnist", "after:fashion"}
    assert set(summary["accuracy"]["after:fashion"]) == {"mnist", "fashion"}
    assert all(0 <= v <= 1 for row in summary["accuracy"].values() for v in row.values())
    resolved = yaml.safe_load((out / "config.yaml").read_text())
    assert resolved["seed"] == 7 and resolved["model"]["hidden"] == [32]
    # The resolved configuration reproduces the run on its own.
    again = archsim("run", str(out / "config.yaml"), "--out", str(tmp_path / "again"), "--quiet")
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "again" / "summary.json").read_text() == (out / "summary.json").read_text()


def test_set_override_reaches_the_run(tmp_path):
    workload = write_workload(tmp_path)
    out = tmp_path / "run"
    proc = archsim("run", str(workload), "--out", str(out), "--quiet", "--set", "learning.m_star=0")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "summary.json").read_text())["m_star"] == 0


def test_set_override_indexes_the_task_list(tmp_path):
    out = tmp_path / "run"
    proc = archsim("run", str(write_workload(tmp_path)), "--out", str(out), "--quiet",
                   "--set", "tasks.1.epochs=2", "--set", "tasks.0.train_limit=200")
    assert proc.returncode == 0, proc.stderr
    tasks = yaml.safe_load((out / "config.yaml").read_text())["tasks"]
    assert [t["epochs"] for t in tasks] == [1, 2]
    assert [t["train_limit"] for t in tasks] == [200, 300]


BAD_WORKLOAD_CHANGES = {
    "unknown top-level key": ({"colour": "red"}, "unknown key 'colour'"),
    "one level": ({"model": {"hidden": [32], "levels": 1}}, "model.levels"),
    "negative hidden size": ({"model": {"hidden": [-4]}}, "model.hidden"),
    "empty task list": ({"tasks": []}, "tasks"),
    "unknown dataset": ({"tasks": [{"name": "a", "dataset": "cifar", "epochs": 1}]}, "tasks.0.dataset"),
    "zero epochs": ({"tasks": [{"name": "a", "dataset": "mnist", "epochs": 0}]}, "tasks.0.epochs"),
    "duplicate task names": (
        {"tasks": [{"name": "a", "dataset": "mnist", "epochs": 1}, {"name": "a", "dataset": "mnist", "epochs": 1}]},
        "task names must be unique",
    ),
    "bnn rule with three levels": ({"learning": {"rule": "bnn-meta"}}, "levels = 2"),
    "unknown rule": ({"learning": {"rule": "sgd-magic"}}, "learning.rule"),
    "wrong type": ({"learning": {"batch_size": "many"}}, "learning.batch_size"),
}


@pytest.mark.parametrize("case", sorted(BAD_WORKLOAD_CHANGES))
def test_bad_workload_gives_one_clear_line(tmp_path, case):
    changes, expected = BAD_WORKLOAD_CHANGES[case]
    workload = write_workload(tmp_path, **changes)
    assert_clean_failure(archsim("run", str(workload), "--out", str(tmp_path / "out")), 2, expected)
    assert not (tmp_path / "out").exists()


BAD_OVERRIDES = {
    "nan learning rate": (["--set", "learning.optimizer.lr=.nan"], "learning.optimizer.lr"),
    "negative m_star": (["--set", "learning.m_star=-1"], "learning.m_star"),
    "override without equals": (["--set", "learning.m_star"], "dotted.key=value"),
    "unknown nested key": (["--set", "learning.momentum=0.9"], "learning.momentum"),
    "infinite init width": (["--set", "model.init_width=.inf"], "model.init_width"),
    "task index out of range": (["--set", "tasks.7.epochs=2"], "no index 7"),
    "task index not a number": (["--set", "tasks.first.epochs=2"], "use an index or '*'"),
    "zero epochs by index": (["--set", "tasks.0.epochs=0"], "tasks.0.epochs"),
}


@pytest.mark.parametrize("case", sorted(BAD_OVERRIDES))
def test_bad_override_gives_one_clear_line(tmp_path, case):
    args, expected = BAD_OVERRIDES[case]
    proc = archsim("run", str(write_workload(tmp_path)), "--out", str(tmp_path / "out"), *args)
    assert_clean_failure(proc, 2, expected)


def test_missing_workload_file(tmp_path):
    assert_clean_failure(archsim("run", str(tmp_path / "nope.yaml")), 2, "no such file")


def test_malformed_yaml(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("tasks: [\n  - name: a\n")
    assert_clean_failure(archsim("run", str(path)), 2, "malformed YAML")


def test_missing_data_dir(tmp_path):
    proc = archsim("run", str(write_workload(tmp_path)), "--data-dir", str(tmp_path / "empty"),
                   "--out", str(tmp_path / "out"))
    assert_clean_failure(proc, 3, "mnist")
    assert not (tmp_path / "out").exists()


def test_existing_output_folder_is_not_overwritten(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "summary.json").write_text("{}")
    assert_clean_failure(archsim("run", str(write_workload(tmp_path)), "--out", str(out)), 4, "--force")
    assert (out / "summary.json").read_text() == "{}"


def test_unknown_cli_option(tmp_path):
    assert_clean_failure(archsim("run", str(write_workload(tmp_path)), "--bogus"), 2, "--bogus")


def assert_clean_failure(proc: subprocess.CompletedProcess, code: int, expected: str) -> None:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("archsim: error: ")
    assert expected in lines[0], lines[0]


# ---- hardware descriptions -------------------------------------------------------------

PAPER_HW = REPO / "hwconfigs" / "paper-130nm.yaml"

BAD_HARDWARE = {
    "zero-row tiles": ({"tile": {"rows": 0}}, 2, "tile.rows"),
    "zero-column tiles": ({"tile": {"cols": 0}}, 2, "tile.cols"),
    "adc with zero bits": ({"adc": {"bits": 0}}, 2, "adc.bits"),
    "negative adc energy": ({"adc": {"energy_per_conversion_j": -1e-12}}, 2, "adc.energy_per_conversion_j"),
    "nan read time": ({"crossbar": {"read_time_s": float("nan")}}, 2, "crossbar.read_time_s"),
    "g_min above g_max": ({"device": {"g_min_s": 5e-5, "g_max_s": 1e-5}}, 2, "g_min"),
    "negative read noise": ({"device": {"read_noise_sigma": -0.1}}, 2, "device.read_noise_sigma"),
    "zero write-verify tolerance": ({"device": {"tolerance": 0}}, 2, "device.tolerance"),
    "unknown hardware key": ({"cooling": "water"}, 2, "unknown key 'hardware.cooling'"),
    "unknown topology": ({"interconnect": {"topology": "ring"}}, 2, "interconnect.topology"),
    "unreachable tile": (
        {"tile": {"count": 200}, "interconnect": {"topology": "custom", "custom_links": [["tile0", "dpu"], ["dpu", "gbuf"]]}},
        2,
        "unreachable",
    ),
    "network needs more tiles than exist": ({"tile": {"count": 2}}, 5, "tiles"),
}


def write_hardware(tmp_path: Path, changes: dict) -> Path:
    tree = yaml.safe_load(PAPER_HW.read_text())
    for section, value in changes.items():
        if isinstance(value, dict) and isinstance(tree.get(section), dict):
            tree[section] = {**tree[section], **value}
        else:
            tree[section] = value
    path = tmp_path / "hw.yaml"
    path.write_text(yaml.safe_dump(tree))
    return path


@pytest.mark.parametrize("case", sorted(BAD_HARDWARE))
def test_bad_hardware_gives_one_clear_line(tmp_path, case):
    changes, code, expected = BAD_HARDWARE[case]
    hw = write_hardware(tmp_path, changes)
    proc = archsim("run", str(write_workload(tmp_path)), "--hw", str(hw), "--out", str(tmp_path / "out"))
    assert_clean_failure(proc, code, expected)
    assert not (tmp_path / "out").exists()


def test_float_weights_on_a_multi_level_device_are_rejected_at_load(tmp_path):
    hw = REPO / "hwconfigs" / "hfo2-device.yaml"
    proc = archsim(
        "run", str(write_workload(tmp_path)), "--hw", str(hw), "--set", "learning.rule=float32",
        "--out", str(tmp_path / "out"),
    )
    assert_clean_failure(proc, 2, "float32")
    assert not (tmp_path / "out").exists()


def test_malformed_hardware_yaml(tmp_path):
    hw = tmp_path / "hw.yaml"
    hw.write_text("tile: {rows: 128\n")
    assert_clean_failure(archsim("run", str(write_workload(tmp_path)), "--hw", str(hw)), 2, "malformed YAML")


def test_hardware_file_that_is_a_list(tmp_path):
    hw = tmp_path / "hw.yaml"
    hw.write_text("- 1\n- 2\n")
    assert_clean_failure(archsim("run", str(write_workload(tmp_path)), "--hw", str(hw)), 2, "mapping")


# ---- data files ----------------------------------------------------------------------------

def corrupted_data_dir(tmp_path: Path, damage) -> Path:
    """A copy of the shared datasets with one MNIST file damaged by ``damage(bytes) -> bytes``."""
    import shutil

    from archsim.data import find_dataset_dir

    root = tmp_path / "data"
    for name in ("mnist", "fashion-mnist"):
        shutil.copytree(find_dataset_dir(name), root / name)
    target = next((root / "mnist").glob("train-labels-idx1-ubyte*"))
    target.write_bytes(damage(target.read_bytes()))
    return root


@pytest.mark.parametrize(
    "case,damage,expected",
    [
        ("truncated", lambda b: b[: len(b) // 2], "train-labels"),
        ("not gzip", lambda b: b"this is not a gzip file", "train-labels"),
        ("empty", lambda b: b"", "train-labels"),
    ],
)
def test_damaged_data_file(tmp_path, case, damage, expected):
    data = corrupted_data_dir(tmp_path, damage)
    proc = archsim("run", str(write_workload(tmp_path)), "--data-dir", str(data), "--out", str(tmp_path / "out"))
    assert_clean_failure(proc, 3, expected)
    assert not (tmp_path / "out").exists()


# ---- output locations ----------------------------------------------------------------------

def test_output_path_is_a_file(tmp_path):
    target = tmp_path / "file"
    target.write_text("x")
    assert_clean_failure(archsim("run", str(write_workload(tmp_path)), "--out", str(target)), 4, "not a folder")


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere; permissions cannot be tested")
def test_unwritable_output_folder(tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    assert_clean_failure(archsim("run", str(write_workload(tmp_path)), "--out", str(locked / "run")), 4, "writable")


def test_output_under_a_read_only_filesystem_path(tmp_path):
    """/proc is read-only even for root."""
    assert_clean_failure(archsim("run", str(write_workload(tmp_path)), "--out", "/proc/archsim-run"), 4, "--out")


def test_trace_without_hardware(tmp_path):
    proc = archsim("run", str(write_workload(tmp_path)), "--trace", str(tmp_path / "t.json"), "--out", str(tmp_path / "o"))
    assert_clean_failure(proc, 4, "--hw")
