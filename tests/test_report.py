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
import yaml

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
        "conductance.svg"}
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
    del summary["energy_j"], summary["tasks"]
    (run / "summary.json").write_text(json.dumps(summary))
    (run / "devices.npz").write_bytes(b"not a zip")  # unreadable: noted, not an error
    text = make_report(run).read_text()
    assert "Note: config.yaml is missing" in text and "Note: devices.npz cannot be read" in text
    assert "*Skipped: no energy_j" in text
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
    proc = archsim("report", str(tmp_path), "--out", str(out),
                   "--objective", "energy", "--objective", "train-latency", "--objective", "writes")
    assert proc.returncode == 0, proc.stderr
    assert {p.name for p in out.iterdir()} == {"report.md", "sweep_energy.png", "sweep_writes.png"}
    text = (out / "report.md").read_text()
    assert "*Skipped: no column latency_s.train_step in results.parquet" in text
    assert "| points failed (left out) | 1 |" in text
    assert "`learning.m_star`, `model.hidden`, `seed`" in text
    assert "| colour | `learning.m_star` |" in text and "| marker | `model.hidden` |" in text
    energy_part = text.split("## Energy of the whole run vs accuracy")[1].split("## ")[0]
    writes_part = text.split("## Device writes of the run vs accuracy")[1]
    # (energy, accuracy): p00 (1, 65%), p01 (2, 70%), p02 (3, 75%), p03 (2.5, 65%), p04 (9, 90%):
    # only p03 is dominated (by p01).
    assert [r for r in ("p00", "p01", "p02", "p03", "p04") if f"| {r}" in energy_part] == [
        "p00", "p01", "p02", "p04"]
    # writes: p04 (50 writes, 90%) dominates everything.
    assert [r for r in ("p00", "p01", "p02", "p03", "p04") if f"| {r}" in writes_part] == ["p04"]
    assert "| 4 | [128] | 90.00 | 9 J | 1 | p04" in energy_part


def test_sweep_report_aggregates_seeds_as_mean_and_sd(tmp_path):
    frame = synthetic_results(tmp_path)
    ok = frame[frame["status"] == "ok"]
    again = ok.assign(seed=1, point_id=[p.replace("p", "q") for p in ok["point_id"]],
                      **{"accuracy.after:fashion.mnist": ok["accuracy.after:fashion.mnist"] - 0.1,
                         "energy_j.total": ok["energy_j.total"] + 1.0})
    pd.concat([frame, again]).to_parquet(tmp_path / "results.parquet")
    text = make_report(tmp_path, tmp_path / "rep", objectives=["energy", "accuracy"]).read_text()
    assert "| seeds per configuration | 2 (drawn as mean ± sd) |" in text
    # p04 and its second seed: accuracy (90+90)/2 and (80+90)/2 -> 90 and 85, mean 87.5, sd 3.536;
    # energy 9 and 10 J -> 9.5 ± 0.7071 J.
    assert "| 4 | [128] | 87.50 ± 3.54 | 9.5 J ± 707.1 mJ | 2 |" in text
    accuracy_part = text.split("## Accuracy of every configuration")[1]
    assert "| 4 | [128] | 87.50 ± 3.54 | 2 |" in accuracy_part


def test_unknown_objective_is_one_line(tmp_path):
    synthetic_results(tmp_path)
    assert_clean_failure(archsim("report", str(tmp_path), "--objective", "joy"), 2,
                         "--objective 'joy': not an objective; choose one of inference-energy")


def test_sweep_report_without_metric_columns(tmp_path):
    frame = synthetic_results(tmp_path, with_latency=True)
    frame.drop(columns=[c for c in frame.columns if c.startswith(("accuracy.", "energy_j."))]).to_parquet(
        tmp_path / "results.parquet")
    text = make_report(tmp_path).read_text()
    assert text.count("*Skipped: no accuracy.after:") == 4  # the default objectives, area absent
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
def minimal_summary() -> dict:
    """The smallest valid summary.json: a software run of one task."""
    return {"archsim_version": "0", "workload": "w", "seed": 0, "rule": "qnn-meta", "m_star": 0.0,
            "accuracy": {"after:a": {"a": 0.5}}, "validation_accuracy": {}, "train_loss": {"a": [1.0]},
            "writes": {"total": 0, "max_per_device": 0, "mean_per_device": 0.0, "pulses_total": 0,
                       "stuck_devices": 0, "weights": 1},
            "memory_bits": {"weights": 1, "total": 34, "bnn_equivalent": 66, "saving_vs_bnn": 1.94, "formula": "f"}}


@pytest.mark.parametrize("case", ["missing", "not-a-run", "corrupt-summary", "not-a-summary", "corrupt-parquet",
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
    elif case == "not-a-summary":
        (target / "summary.json").write_text(json.dumps({"accuracy": {"after:a": {"a": 0.5}}}))
        code, expected = 3, "not a summary of this archsim version ('archsim_version': Field required)"
    elif case == "unwritable-out":
        (target / "summary.json").write_text(json.dumps(minimal_summary()))
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


# -- SI units and every swept key ----------------------------------------------------------------
def tick_texts(fig) -> list[str]:
    fig.canvas.draw()
    return [t.get_text() for ax in fig.axes for t in ax.get_xticklabels() if t.get_text()]


def test_figure_axes_carry_si_units(hw_run):
    from matplotlib.ticker import EngFormatter

    from archsim.report import plots
    from archsim.results import RunSummary

    summary = RunSummary.load(hw_run)
    energy = plots.energy_breakdown(summary.energy_frame())
    assert all(isinstance(ax.xaxis.get_major_formatter(), EngFormatter) and ax.xaxis.get_major_formatter().unit == "J"
               for ax in energy.axes)
    assert any(t.endswith("mJ") for t in tick_texts(energy))  # the smoke run costs some mJ
    latency = plots.latency_figure(summary.latency_s.by_phase, summary.latency_cycles.by_phase,
                                   {"train step": summary.latency_s.train_step})
    assert {ax.xaxis.get_major_formatter().unit for ax in latency.axes} == {"s"}
    assert any(t.endswith("ms") for t in tick_texts(latency))
    with np.load(hw_run / "devices.npz") as npz:
        g, state, stuck = npz["layer0.g0_s"].ravel(), npz["layer0.state0"].ravel(), npz["layer0.stuck0"].ravel()
        targets = npz["state_g_s"]
    g = g.copy()
    g[:10] = 0.0  # below the physical floor: drawn at G_min
    conductance = plots.conductance_histogram(g, state, stuck, targets, 1e-6)
    texts = tick_texts(conductance)
    assert any("µS" in t for t in texts) and not any("uS" in t for t in texts)
    bars = [patch.get_x() for patch in conductance.axes[0].patches if patch.get_height() > 0]
    assert bars and min(bars) >= 1e-6 * (1 - 1e-9)  # nothing drawn below the physical floor
    for fig in (energy, latency, conductance):
        plots.plt.close(fig)


def two_key_table():
    import pandas as pd

    return pd.DataFrame({"hardware.adc.bits": [3, 3, 8, 8], "hardware.tile.rows": [64, 128, 64, 128],
                         "cost_mean": [2e-9, 3e-9, 4e-9, 5e-9], "cost_sd": [0.0, 1e-10, 0.0, 0.0],
                         "accuracy_mean": [0.5, 0.6, 0.7, 0.8], "accuracy_sd": [0.0, 0.01, 0.02, 0.0],
                         "n_seeds": [2, 2, 2, 2], "points": [[0], [1], [2], [3]]})


def test_sweep_figure_shows_both_keys_with_discrete_colours_and_si_axis():
    from matplotlib.ticker import EngFormatter

    from archsim.report import plots
    from archsim.report.sweep_report import OBJECTIVES, encoding

    table = two_key_table()
    enc = encoding(["hardware.adc.bits", "hardware.tile.rows"])
    fig = plots.sweep_figure(table, np.array([True, True, True, True]), enc, OBJECTIVES["inference-energy"])
    labels = [t.get_text() for legend in fig.legends for t in legend.get_texts()]
    assert {"hardware.adc.bits=3", "hardware.adc.bits=8", "hardware.tile.rows=64", "hardware.tile.rows=128"} <= set(labels)
    ax = fig.axes[0]
    assert isinstance(ax.xaxis.get_major_formatter(), EngFormatter) and ax.xaxis.get_major_formatter().unit == "J"
    assert any(t.endswith("nJ") for t in tick_texts(fig))
    colours = {tuple(line.get_color()) if not isinstance(line.get_color(), str) else line.get_color()
               for line in ax.get_lines() if line.get_marker() not in (None, "None", "")}
    assert len(colours) == 2  # one discrete colour per ADC resolution, no colour bar
    assert len(fig.axes) == 1
    plots.plt.close(fig)


def test_report_of_a_real_sweep_over_two_keys_with_objective(tmp_path):
    import archsim

    spec = {"name": "two-keys", "workload": "smoke", "hardware": "paper-130nm",
            "set": {"tasks.*.epochs": 1, "tasks.*.train_limit": 300, "tasks.*.test_limit": 200,
                    "data.validation_size": 100, "model.hidden": [32]},
            "grid": {"hardware.adc.bits": [3, 8], "hardware.tile.rows": [64, 128]}, "seeds": [0]}
    (tmp_path / "two.yaml").write_text(yaml.safe_dump(spec))
    frame = archsim.sweep(tmp_path / "two.yaml", out=tmp_path / "out", serial=True)
    assert len(frame) == 4 and set(frame["status"]) == {"ok"}
    csv = pd.read_csv(tmp_path / "out" / "results.csv")
    assert list(csv["point_id"]) == list(frame["point_id"]) and "config_json" not in csv.columns
    proc = archsim_cli("report", str(tmp_path / "out"), "--objective", "inference-energy", "--objective", "accuracy")
    assert proc.returncode == 0, proc.stderr
    out = tmp_path / "out" / "report"
    assert {p.name for p in out.iterdir()} == {"report.md", "sweep_inference-energy.png", "sweep_accuracy.png"}
    text = (out / "report.md").read_text()
    assert "| colour | `hardware.adc.bits` |" in text and "| marker | `hardware.tile.rows` |" in text
    assert "| `hardware.adc.bits` | `hardware.tile.rows` | accuracy (%) | `energy_j.per_inference_image` |" in text
    assert "Skipped" not in text


archsim_cli = archsim
