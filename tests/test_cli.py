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
