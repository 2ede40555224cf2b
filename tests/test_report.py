"""``archsim report``: run reports (with and without hardware), sweep reports, the Pareto
function, determinism, atomicity and one-line errors for bad inputs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from archsim.config import load_run_config
from archsim.errors import OutputError
from archsim.report import make_report
from archsim.report import sweep_report
from archsim.report.sweep_report import final_accuracy, pareto_mask, task_order
from archsim.runner import execute_run

REPO = Path(__file__).resolve().parent.parent
TASKS = (
    "tasks=[{name: mnist, dataset: mnist, epochs: 1, train_limit: 400, test_limit: 200},"
    " {name: fashion, dataset: fashion-mnist, epochs: 2, train_limit: 400, test_limit: 200}]"
)
SMALL = ["model.hidden=[32]", "data.validation_size=100", TASKS]


def archsim(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "archsim.cli", *args], capture_output=True, text=True,
                          cwd=REPO, env=dict(os.environ), timeout=120)


def assert_clean_failure(proc: subprocess.CompletedProcess, code: int, expected: str) -> None:
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("archsim: error: ") and expected in lines[0], lines[0]


@pytest.fixture(scope="module")
def hw_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "hw"
    config = load_run_config(REPO / "workloads" / "smoke.yaml", "paper-130nm", SMALL + ["software_baseline=true"])
    execute_run(config, out, show_progress=False)
    return out


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "plain"
    execute_run(load_run_config(REPO / "workloads" / "smoke.yaml", None, SMALL), out, show_progress=False)
    return out


def no_staging_left(folder: Path) -> bool:
    return not any(p.name.endswith(".partial") for p in folder.iterdir())


# -- run reports ---------------------------------------------------------------------------------
def test_cli_report_of_a_hardware_run(hw_run, tmp_path):
    out = tmp_path / "rep"
    proc = archsim("report", str(hw_run), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"report: {out / 'report.md'}"
    names = {p.name for p in out.iterdir()}
    assert names == {"report.md", "accuracy.png", "energy.png", "area.png", "latency.png", "writes.png",
                     "conductance.png"}
    for name in names - {"report.md"}:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = (out / "report.md").read_text()
    for figure in names - {"report.md"}:
        assert f"]({figure})" in text
    assert "Skipped" not in text
    assert "software baseline" in text.lower()
    # The lifetime formula and its value from devices.npz and config.yaml (1 + 2 epochs).
    assert "`lifetime_epochs = endurance_median / (max_per_device / epochs_trained)`" in text
    with np.load(hw_run / "devices.npz") as npz:
        most = max(int(npz[k].max()) for k in npz.files if k.endswith(".writes"))
    assert f"lifetime = 1e+06 / ({most:,d} / 3) = **{1e6 * 3 / most:.4g} epochs**" in text
    assert "| after:mnist |" in text and text.index("| after:mnist |") < text.index("| after:fashion |")
    assert no_staging_left(tmp_path)


def test_run_report_is_deterministic_and_replaces_an_earlier_report(hw_run):
    # Default folder RUN_DIR/report, rewritten as a whole (same bytes) on a second call.
    path = make_report(hw_run)
    assert path == hw_run / "report" / "report.md"
    first = {p.name: p.read_bytes() for p in path.parent.iterdir()}
    (path.parent / "stale.png").write_bytes(b"x")
    make_report(hw_run)
    assert {p.name: p.read_bytes() for p in path.parent.iterdir()} == first
    assert no_staging_left(hw_run)


def test_svg_format(hw_run, tmp_path):
    svg = make_report(hw_run, tmp_path / "svg", "svg").parent
    assert {p.name for p in svg.iterdir()} == {
        "report.md", "accuracy.svg", "energy.svg", "area.svg", "latency.svg", "writes.svg",
        "conductance.png"}
    # conductance.png: drawn by archsim.devices.plots, PNG only.
    assert "<dc:date>" not in (svg / "accuracy.svg").read_text()
    assert "](accuracy.svg)" in (svg / "report.md").read_text()


def test_run_without_hardware_skips_the_hardware_sections(plain_run, tmp_path):
    out = make_report(plain_run, tmp_path / "rep", "both").parent
    assert {p.name for p in out.iterdir()} == {
        "report.md", "accuracy.png", "accuracy.svg", "writes.png", "writes.svg"}
    text = (out / "report.md").read_text()
    skipped = [line for line in text.splitlines() if line.startswith("*Skipped:")]
    assert len(skipped) == 4, skipped  # energy, latency, lifetime, conductances
    assert any("energy_j" in s for s in skipped) and any("latency" in s for s in skipped)
    assert any("conductances" in s for s in skipped) and any("endurance" in s for s in skipped)
    assert "## 6. Memory footprint" in text and "bnn_equivalent" in text
    assert "](writes.png)" in text and "Also: [writes.svg](writes.svg)" in text


def test_sections_with_missing_files_are_skipped(hw_run, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    summary = json.loads((hw_run / "summary.json").read_text())
    del summary["energy_j"], summary["memory_bits"]
    (run / "summary.json").write_text(json.dumps(summary))
    (run / "devices.npz").write_bytes(b"not a zip")  # unreadable: noted, not an error
    text = make_report(run).read_text()
    assert "Note: config.yaml is missing" in text and "Note: devices.npz cannot be read" in text
    assert "*Skipped: no energy_j" in text and "*Skipped: no memory_bits" in text
    assert "*Skipped: devices.npz holds no per-device write counts" in text
    assert "latency.png" in text
    # Without config.yaml the rows are ordered by how many tasks they hold.
    assert text.index("| after:mnist |") < text.index("| after:fashion |")


def test_a_failing_report_leaves_no_folder(hw_run, tmp_path, monkeypatch):
    from archsim.report import run_report

    def boom(*args, **kwargs):
        raise RuntimeError("plot failed")

    monkeypatch.setattr(run_report, "energy_section", boom)
    with pytest.raises(RuntimeError):
        make_report(hw_run, tmp_path / "rep")
    assert list(tmp_path.iterdir()) == []


def test_out_may_not_replace_foreign_files(hw_run, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(OutputError, match="holds other files"):
        make_report(hw_run, other)
    with pytest.raises(OutputError, match="would replace the results folder"):
        make_report(hw_run, hw_run.parent)
    assert (other / "keep.txt").read_text() == "mine"


# -- Pareto --------------------------------------------------------------------------------------
def brute_force_front(points: np.ndarray) -> np.ndarray:
    n = len(points)
    out = np.ones(n, dtype=bool)
    for i in range(n):
        if not np.all(np.isfinite(points[i])):
            out[i] = False
            continue
        for j in range(n):
            if np.all(np.isfinite(points[j])) and np.all(points[j] <= points[i]) and np.any(points[j] < points[i]):
                out[i] = False
    return out


def test_pareto_mask_small_example():
    # (cost, accuracy): minimise cost, maximise accuracy.
    pts = [[1, 0.5], [2, 0.7], [2, 0.6], [3, 0.7], [4, 0.9], [1, 0.5], [np.nan, 1.0], [5, 0.8]]
    mask = pareto_mask(pts, maximize=[False, True])
    assert mask.tolist() == [True, True, False, False, True, True, False, False]


def test_pareto_mask_matches_brute_force(monkeypatch):
    monkeypatch.setattr(sweep_report, "_CHUNK", 7)  # exercise the chunked path
    rng = np.random.default_rng(0)
    for d in (1, 2, 3):
        pts = rng.integers(0, 6, size=(60, d)).astype(float)
        pts[3, 0] = np.inf
        assert np.array_equal(pareto_mask(pts), brute_force_front(pts))
    assert pareto_mask(np.zeros((0, 2))).tolist() == []
    with pytest.raises(ValueError):
        pareto_mask(np.zeros((3, 2)), maximize=[True])


# -- sweep reports -------------------------------------------------------------------------------
def synthetic_results(path: Path, with_latency: bool = False) -> pd.DataFrame:
    config = json.dumps({"tasks": [{"name": "mnist"}, {"name": "fashion"}]})
    rows = []
    # (m_star, hidden, seed, acc after:fashion (mnist, fashion), energy, writes)
    data = [
        (0.0, "[64]", 0, (0.50, 0.80), 1.0, 100),
        (1.0, "[64]", 0, (0.60, 0.80), 2.0, 300),
        (2.0, "[64]", 0, (0.70, 0.80), 3.0, 200),
        (0.0, "[128]", 0, (0.55, 0.75), 2.5, 400),
        (4.0, "[128]", 0, (0.90, 0.90), 9.0, 50),
    ]
    for i, (m, hidden, seed, (acc_m, acc_f), energy, writes) in enumerate(data):
        row = {"point_id": f"p{i:02d}" + "0" * 20, "status": "ok", "error": "", "wall_time_s": 1.0,
               "finished_at": "2026-01-01T00:00:00Z", "learning.m_star": m, "model.hidden": hidden,
               "seed": seed, "config_json": config, "accuracy.after:mnist.mnist": 0.95,
               "accuracy.after:fashion.mnist": acc_m, "accuracy.after:fashion.fashion": acc_f,
               "energy_j.total": energy, "writes.total": writes, "summary.seed": seed, "rule": "qnn-meta"}
        if with_latency:
            row["latency_s.train_step"] = 1e-3 * (i + 1)
        rows.append(row)
    rows.append({"point_id": "bad" + "0" * 20, "status": "error", "error": "ValueError: x",
                 "learning.m_star": 8.0, "model.hidden": "[64]", "seed": 0, "config_json": config})
    frame = pd.DataFrame(rows)
    frame.to_parquet(path / "results.parquet")
    return frame


def test_sweep_report_on_a_synthetic_parquet(tmp_path):
    synthetic_results(tmp_path)
    out = tmp_path / "rep"
    proc = archsim("report", str(tmp_path), "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert {p.name for p in out.iterdir()} == {"report.md", "pareto_energy.png", "pareto_writes.png"}
    text = (out / "report.md").read_text()
    assert "*Skipped: no column latency_s.train_step / latency_s.total" in text
    assert "| points failed (left out) | 1 |" in text
    assert "`learning.m_star`, `model.hidden`, `seed`" in text
    energy_part = text.split("## Energy vs accuracy")[1].split("## Latency")[0]
    writes_part = text.split("## Writes vs accuracy")[1]
    # (energy, accuracy): p00 (1, 65%), p01 (2, 70%), p02 (3, 75%), p03 (2.5, 65%), p04 (9, 90%):
    # only p03 is dominated (by p01).
    assert [r for r in ("p00", "p01", "p02", "p03", "p04") if f"| {r}" in energy_part] == [
        "p00", "p01", "p02", "p04"]
    # writes: p04 (50 writes, 90%) dominates everything.
    assert [r for r in ("p00", "p01", "p02", "p03", "p04") if f"| {r}" in writes_part] == ["p04"]
    assert "| 4 | [128] | 0 | 90.00 | 9 J | p04" in energy_part


def test_sweep_report_without_metric_columns(tmp_path):
    frame = synthetic_results(tmp_path, with_latency=True)
    frame.drop(columns=[c for c in frame.columns if c.startswith(("accuracy.", "energy_j."))]).to_parquet(
        tmp_path / "results.parquet")
    text = make_report(tmp_path).read_text()
    assert text.count("*Skipped: no accuracy.after:") == 3
    assert not list((tmp_path / "report").glob("*.png"))


def test_task_order_and_final_accuracy_without_config():
    frame = pd.DataFrame({
        "accuracy.after:a.b.a.b": [0.5, 0.7], "accuracy.after:c.a.b": [0.2, np.nan],
        "accuracy.after:c.c": [0.4, 0.5],
    })
    assert task_order(frame) == ["a.b", "c"]
    acc, columns, last = final_accuracy(frame)
    assert last == "c" and columns == ["accuracy.after:c.a.b", "accuracy.after:c.c"]
    assert acc[0] == pytest.approx(0.3) and np.isnan(acc[1])


# -- bad inputs ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("case", ["missing", "not-a-run", "corrupt-summary", "corrupt-parquet",
                                  "unwritable-out", "bad-format"])
def test_bad_inputs_give_one_line(tmp_path, case):
    target = tmp_path / "run"
    target.mkdir()
    args: list[str] = []
    if case == "missing":
        target = tmp_path / "nope"
        code, expected = 2, "no such folder"
    elif case == "not-a-run":
        code, expected = 2, "not a run or sweep folder"
    elif case == "corrupt-summary":
        (target / "summary.json").write_text('{"accuracy": ')
        code, expected = 3, "summary.json: corrupt JSON"
    elif case == "corrupt-parquet":
        (target / "results.parquet").write_bytes(b"PAR1 garbage")
        code, expected = 3, "cannot be read as Parquet"
    elif case == "unwritable-out":
        (target / "summary.json").write_text(json.dumps({"accuracy": {"after:a": {"a": 0.5}}}))
        blocker = tmp_path / "file"
        blocker.write_text("x")
        args = ["--out", str(blocker / "rep")]
        code, expected = 4, "cannot write"
    else:
        (target / "summary.json").write_text("{}")
        args = ["--format", "jpg"]
        code, expected = 2, "must be png, svg or both"
    assert_clean_failure(archsim("report", str(target), *args), code, expected)
    if target.exists():
        assert not (target / "report").exists()
