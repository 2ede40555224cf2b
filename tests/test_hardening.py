"""Interrupted runs leave a complete result or none; same seed gives byte-identical results."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent


def slow_workload(tmp_path: Path) -> Path:
    """Long enough (tens of seconds) to be interrupted in the middle of training."""
    tree = yaml.safe_load((REPO / "workloads" / "smoke.yaml").read_text())
    for task in tree["tasks"]:
        task.update(epochs=50, train_limit=5000)
    path = tmp_path / "slow.yaml"
    path.write_text(yaml.safe_dump(tree))
    return path


def start_run(workload: Path, out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "archsim.cli", "run", str(workload), "--out", str(out), "--quiet"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def wait_until_training(proc: subprocess.Popen, seconds: float = 4.0) -> None:
    time.sleep(seconds)
    assert proc.poll() is None, proc.communicate()


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 130)])
def test_interrupted_run_says_so_and_keeps_nothing(tmp_path, sig, code):
    out = tmp_path / "results" / "run"
    proc = start_run(slow_workload(tmp_path), out)
    wait_until_training(proc)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("archsim: error: ") and "no partial" in lines[0]
    assert not out.exists()
    assert leftovers(out.parent) == []


def test_sigkill_leaves_no_result_a_later_command_would_read(tmp_path):
    out = tmp_path / "results" / "run"
    proc = start_run(slow_workload(tmp_path), out)
    wait_until_training(proc)
    proc.kill()
    proc.wait(timeout=30)
    assert not (out / "summary.json").exists()
    # Whatever a kill leaves is hidden staging, never a folder named like the result.
    assert all(name.startswith(".") for name in leftovers(out.parent))
    # The next run into the same folder is not blocked by the killed one.
    quick = yaml.safe_load((REPO / "workloads" / "smoke.yaml").read_text())
    for task in quick["tasks"]:
        task.update(epochs=1, train_limit=300, test_limit=200)
    path = tmp_path / "quick.yaml"
    path.write_text(yaml.safe_dump(quick))
    done = subprocess.run([sys.executable, "-m", "archsim.cli", "run", str(path), "--out", str(out), "--quiet"],
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads((out / "summary.json").read_text())["accuracy"]


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "archsim.cli", *args], cwd=REPO,
                          capture_output=True, text=True, timeout=300, env={**os.environ})


def test_same_seed_byte_identical_summary_with_device_model(tmp_path):
    tree = yaml.safe_load((REPO / "workloads" / "smoke.yaml").read_text())
    for task in tree["tasks"]:
        task.update(epochs=1, train_limit=500, test_limit=300)
    tree["model"]["hidden"] = [64]
    path = tmp_path / "w.yaml"
    path.write_text(yaml.safe_dump(tree))
    outs = {}
    for name, seed in (("a", "5"), ("b", "5"), ("c", "6")):
        proc = run_cli("run", str(path), "--hw", "hfo2-device", "--seed", seed, "--out", str(tmp_path / name), "--quiet")
        assert proc.returncode == 0, proc.stderr
        outs[name] = (tmp_path / name / "summary.json").read_bytes()
    assert outs["a"] == outs["b"]
    assert outs["a"] != outs["c"]
    a = json.loads(outs["a"])["device"]
    c = json.loads(outs["c"])["device"]
    assert a["initial_program_pulses"] != c["initial_program_pulses"]  # different device draws


def test_devices_npz_round_trips_every_array_exactly(tmp_path):
    """devices.npz is written at zlib level 1 for speed; np.load must give back every array."""
    import zipfile

    import numpy as np

    from archsim.io import atomic_write_npz

    rng = np.random.default_rng(0)
    arrays = {
        "conductance_uS": rng.normal(20.0, 5.0, (784, 64)).astype(np.float32),
        "writes": rng.poisson(5.0, (784, 64)).astype(np.int32),
        "stuck": rng.random((784, 64)) < 1e-3,
        "levels": rng.integers(-2, 2, 10).astype(np.int8),
        "empty": np.zeros((0, 3), np.float64),
    }
    path = tmp_path / "devices.npz"
    atomic_write_npz(path, arrays)
    with np.load(path) as loaded:
        assert sorted(loaded.files) == sorted(arrays)
        for name, array in arrays.items():
            assert loaded[name].dtype == array.dtype and np.array_equal(loaded[name], array), name
    with zipfile.ZipFile(path) as archive:
        assert {info.compress_type for info in archive.infolist()} == {zipfile.ZIP_DEFLATED}
    assert path.stat().st_size < sum(a.nbytes for a in arrays.values())  # compressed, not stored
