"""``archsim sweep``: spec validation, point expansion and ids, storage, resume, kill safety.

The sweeps here use a tiny workload (hidden [16], 200 training / 100 test images per task,
one epoch) so that every point takes well under a second.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest
import yaml

from archsim.errors import ConfigError
from archsim.config.dotted import set_dotted
from archsim.sweep.points import expand
from archsim.sweep.spec import load_spec
from archsim.sweep.store import flatten

REPO = Path(__file__).resolve().parent.parent

TINY_WORKLOAD = {
    "name": "tiny",
    "tasks": [
        {"name": "mnist", "dataset": "mnist", "epochs": 1, "train_limit": 200, "test_limit": 100},
        {"name": "fashion", "dataset": "fashion-mnist", "epochs": 1, "train_limit": 200, "test_limit": 100},
    ],
    "model": {"hidden": [16], "levels": 3, "init_width": 2.0},
    "learning": {"rule": "qnn-meta", "m_star": 2.0, "batch_size": 100},
    "data": {"validation_size": 100},
}


def archsim(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "archsim.cli", *args],
        capture_output=True, text=True, cwd=REPO, timeout=timeout,
    )


def write_spec(folder: Path, **fields) -> Path:
    """A sweep file next to a tiny workload file (referenced relative to the sweep's folder)."""
    (folder / "tiny.yaml").write_text(yaml.safe_dump(TINY_WORKLOAD))
    spec = {"name": "t", "workload": "tiny.yaml", "output": str(folder / "out"), **fields}
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def assert_clean_failure(proc: subprocess.CompletedProcess, code: int, *expected: str) -> str:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("archsim: error: ")
    for text in expected:
        assert text in lines[0], lines[0]
    return lines[0]


def point_files(out: Path) -> list[Path]:
    return sorted(p for p in (out / "points").glob("*.parquet") if not p.name.startswith("."))


# -- spec validation (each fails before anything runs) --------------------------------------
BAD_SPECS = {
    "unknown top-level key": ({"gird": {"learning.m_star": [1]}}, ["unknown key 'gird'"]),
    "empty grid, no random": ({"grid": {}}, ["nothing to sweep"]),
    "empty value list": ({"grid": {"learning.m_star": []}}, ["learning.m_star", "empty list"]),
    "bad value in one point": (
        {"grid": {"learning.m_star": [1.0, -2.0]}},
        ["point 2 of 2", "learning.m_star=-2.0", "invalid value for 'learning.m_star'"],
    ),
    "unknown key in the grid": (
        {"grid": {"learning.momentum": [0.9]}}, ["point 1 of 1", "unknown key 'learning.momentum'"],
    ),
    "unknown distribution": (
        {"random": {"samples": 2, "space": {"learning.m_star": {"normal": [0, 1]}}}},
        ["random.space.learning.m_star"],
    ),
    "seed in the grid": ({"grid": {"seed": [1, 2]}}, ["seeds"]),
}


@pytest.mark.parametrize("case", sorted(BAD_SPECS))
def test_bad_spec_gives_one_clear_line(tmp_path, case):
    fields, expected = BAD_SPECS[case]
    proc = archsim("sweep", str(write_spec(tmp_path, **fields)), "--serial")
    assert_clean_failure(proc, 2, *expected)
    assert not (tmp_path / "out").exists()


def test_unwritable_output(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    spec = write_spec(tmp_path, grid={"learning.m_star": [1.0]})
    proc = archsim("sweep", str(spec), "--serial", "--out", str(blocker / "out"))
    assert_clean_failure(proc, 4, "not writable")
    assert blocker.read_text() == "not a folder"


def test_unreachable_scheduler(tmp_path):
    spec = write_spec(tmp_path, grid={"learning.m_star": [1.0]})
    start = time.monotonic()
    proc = archsim("sweep", str(spec), "--scheduler", "tcp://127.0.0.1:1", "--connect-timeout", "1")
    assert_clean_failure(proc, 7, "tcp://127.0.0.1:1", "cannot connect")
    assert time.monotonic() - start < 60
    assert point_files(tmp_path / "out") == []


# -- expansion and ids ----------------------------------------------------------------------
def test_grid_and_random_expand_to_stable_ids(tmp_path):
    space = {"learning.optimizer.lr": {"loguniform": [0.001, 0.05]},
             "model.init_width": {"uniform": [0.5, 1.5]},
             "learning.batch_size": {"int": [50, 100]},
             "model.hidden": {"choice": [[16], [32]]}}
    grid = {"learning.m_star": [0.0, 2.0], "model.levels": [3, 5, 7]}
    spec_path = write_spec(tmp_path, grid=grid, random={"samples": 4, "seed": 3, "space": space},
                           seeds=[0, 1])
    points, duplicates = expand(load_spec(spec_path), spec_path)
    assert len(points) == 2 * 3 * 4 * 2 and duplicates == 0
    assert len({p.id for p in points}) == len(points)
    for p in points:
        assert list(p.swept) == list(grid) + list(space) + ["seed"]
        assert 0.001 <= p.swept["learning.optimizer.lr"] <= 0.05
        assert 50 <= p.swept["learning.batch_size"] <= 100
        assert p.config["learning"]["optimizer"]["lr"] == p.swept["learning.optimizer.lr"]
    # Same spec -> same ids; reordered and extended grid, more samples -> earlier ids kept.
    again, _ = expand(load_spec(spec_path), spec_path)
    assert [p.id for p in again] == [p.id for p in points]
    bigger = {"model.levels": [7, 5, 3, 9], "learning.m_star": [2.0, 0.0]}
    spec2 = write_spec(tmp_path, grid=bigger, random={"samples": 5, "seed": 3, "space": space},
                       seeds=[1, 0])
    extended, _ = expand(load_spec(spec2), spec2)
    assert len(extended) == 4 * 2 * 5 * 2
    assert {p.id for p in points} < {p.id for p in extended}
    # Another random seed draws other samples.
    spec3 = write_spec(tmp_path, grid=grid, random={"samples": 4, "seed": 4, "space": space}, seeds=[0, 1])
    assert not {p.id for p in expand(load_spec(spec3), spec3)[0]} & {p.id for p in points}


def test_same_configuration_twice_runs_once(tmp_path):
    spec_path = write_spec(tmp_path, grid={"learning.m_star": [1, 1.0, 2]})
    points, duplicates = expand(load_spec(spec_path), spec_path)
    assert len(points) == 2 and duplicates == 1


def test_dotted_keys_index_lists():
    tree = {"tasks": [{"epochs": 3}, {"epochs": 3}], "model": {}}
    set_dotted(tree, "tasks.*.epochs", 1)
    set_dotted(tree, "tasks.1.train_limit", 10)
    set_dotted(tree, "hardware.device.read_noise_sigma", 0.1)
    assert tree["tasks"] == [{"epochs": 1}, {"epochs": 1, "train_limit": 10}]
    assert tree["hardware"] == {"device": {"read_noise_sigma": 0.1}}
    with pytest.raises(ConfigError, match="no index 2"):
        set_dotted(tree, "tasks.2.epochs", 1)
    with pytest.raises(ConfigError, match="is a value"):
        set_dotted(tree, "tasks.0.epochs.x", 1)


def test_flatten_summary():
    flat = flatten({"accuracy": {"after:fashion": {"mnist": 0.5}}, "writes": {"total": 3},
                    "loss": {"mnist": [1.0, 0.5]}, "rule": "qnn-meta", "bad": float("nan")})
    assert flat == {"accuracy.after:fashion.mnist": 0.5, "writes.total": 3, "loss.mnist": "[1.0, 0.5]",
                    "rule": "qnn-meta", "bad": None}


# -- running --------------------------------------------------------------------------------
def test_serial_sweep_writes_results_and_rerun_skips(tmp_path):
    spec = write_spec(tmp_path, grid={"learning.m_star": [0.0, 2.0], "model.levels": [3, 5]})
    proc = archsim("sweep", str(spec), "--serial", "--quiet")
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "out"
    results = pd.read_parquet(out / "results.parquet")
    assert len(results) == 4 and results["point_id"].is_unique
    assert set(results["status"]) == {"ok"}
    assert results["wall_time_s"].gt(0).all()
    for column in ["learning.m_star", "model.levels", "seed", "config_json",
                   "accuracy.after:fashion.mnist", "accuracy.after:mnist.mnist", "writes.total"]:
        assert column in results.columns, column
    assert sorted(results["learning.m_star"]) == [0.0, 0.0, 2.0, 2.0]
    assert results["accuracy.after:fashion.mnist"].between(0, 1).all()
    assert len(point_files(out)) == 4
    assert yaml.safe_load((out / "sweep.yaml").read_text())["name"] == "t"
    mtimes = {p.name: p.stat().st_mtime_ns for p in point_files(out)}

    again = archsim("sweep", str(spec), "--serial", "--quiet")
    assert again.returncode == 0, again.stderr
    assert "skipped 4 finished points" in again.stdout
    assert {p.name: p.stat().st_mtime_ns for p in point_files(out)} == mtimes

    (out / "results.parquet").unlink()
    collected = archsim("sweep", str(spec), "--collect")
    assert collected.returncode == 0, collected.stderr
    assert len(pd.read_parquet(out / "results.parquet")) == 4


def test_failed_point_is_recorded_and_retried(tmp_path):
    # Valid at validation time, fails at run time: the data folder does not exist.
    spec = write_spec(tmp_path, grid={"data.data_dir": [None, str(tmp_path / "no-data")]},
                      seeds=[0, 1])
    proc = archsim("sweep", str(spec), "--serial", "--quiet")
    assert_clean_failure(proc, 6, "2 of 4 points failed", "DataError")
    results = pd.read_parquet(tmp_path / "out" / "results.parquet")
    assert len(results) == 4
    failed = results[results["status"] == "error"]
    assert len(failed) == 2 and failed["data.data_dir"].eq(str(tmp_path / "no-data")).all()
    assert failed["error"].str.contains("DataError").all()
    assert not failed["error"].str.contains("\n").any()
    assert results.loc[results["status"] == "ok", "accuracy.after:fashion.mnist"].notna().all()

    again = archsim("sweep", str(spec), "--serial", "--quiet")
    assert again.returncode == 6
    assert "skipped 2 finished points" in again.stdout and "ran 2" in again.stdout


def test_killed_sweep_keeps_finished_points_and_resumes(tmp_path):
    """SIGKILL the whole sweep (client and Dask workers) mid-run, then resume it."""
    spec = write_spec(tmp_path, grid={"learning.m_star": [0.0, 1.0, 2.0], "model.levels": [3, 5]},
                      seeds=[0, 1])
    out = tmp_path / "out"
    args = [sys.executable, "-m", "archsim.cli", "sweep", str(spec), "--workers", "1", "--quiet"]
    proc = subprocess.Popen(args, cwd=REPO, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 150
        while len(point_files(out)) < 3:
            assert proc.poll() is None, f"sweep ended before the kill: {proc.stderr.read()}"
            assert time.monotonic() < deadline, "no 3 finished points within 150 s"
            time.sleep(0.05)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        proc.stderr.close()

    before = {}
    for path in point_files(out):
        table = pq.read_table(path)  # complete Parquet files only
        assert table.num_rows == 1 and table.column("status").to_pylist() == ["ok"]
        stat = path.stat()
        before[path.name] = (stat.st_mtime_ns, stat.st_ino)
    assert 3 <= len(before) < 12
    assert not (out / "results.parquet").exists()

    resumed = archsim("sweep", str(spec), "--workers", "1", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert f"skipped {len(before)} finished points" in resumed.stdout
    files = point_files(out)
    assert len(files) == 12
    for name, identity in before.items():
        stat = (out / "points" / name).stat()
        assert (stat.st_mtime_ns, stat.st_ino) == identity, f"{name} was rewritten"
    results = pd.read_parquet(out / "results.parquet")
    assert len(results) == 12 and results["point_id"].is_unique
    assert set(results["point_id"]) == {p.stem for p in files}
    assert set(results["status"]) == {"ok"}


@pytest.mark.parametrize("path", sorted((REPO / "sweeps").glob("*.yaml")), ids=lambda p: p.stem)
def test_every_shipped_sweep_file_plans_valid_distinct_points(path):
    """A shipped sweep must not fail on its first point: every point's configuration
    validates, and no two points are the same configuration by accident."""
    spec = load_spec(path)
    points, duplicates = expand(spec, path)
    assert points and duplicates == 0
    assert len({point.id for point in points}) == len(points)


def test_a_point_another_sweep_ran_gets_this_sweeps_columns(tmp_path):
    """A finished point copied from a sweep with another grid (same configuration, same id)
    is reused, and this sweep's results carry this sweep's swept values for it."""
    from archsim.sweep.execute import run_sweep

    first = write_spec(tmp_path, grid={"learning.m_star": [1.0]})
    assert run_sweep(first, serial=True).ok == 1
    (tmp_path / "other").mkdir()
    second = write_spec(tmp_path / "other", set={"learning.m_star": 1.0}, grid={"model.levels": [3, 4]})
    out = tmp_path / "other" / "out"
    (out / "points").mkdir(parents=True)
    (out / ".archsim-run").write_text((tmp_path / "out" / ".archsim-run").read_text())
    for path in point_files(tmp_path / "out"):
        (out / "points" / path.name).write_bytes(path.read_bytes())
    report = run_sweep(second, serial=True)
    assert report.skipped == 1 and report.ran == 1
    results = pd.read_parquet(out / "results.parquet")
    assert list(results["model.levels"]) == [3, 4]
