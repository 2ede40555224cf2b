"""The Python API (archsim.run / archsim.sweep), the typed result model (archsim.results) and
the packaging commands (--version, presets, schema), device presets named by hardware files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from pydantic import BaseModel, ValidationError

import archsim
from archsim.results import RunSummary, Section, field_path_exists

REPO = Path(__file__).resolve().parent.parent
SMALL = {"model.hidden": [32], "data.validation_size": 100, "tasks.0.epochs": 1, "tasks.1.epochs": 2,
         "tasks.*.train_limit": 400, "tasks.*.test_limit": 200}


def cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "archsim.cli", *args], capture_output=True, text=True,
                          cwd=REPO, env=dict(os.environ), timeout=timeout)


class Recorder:
    def __init__(self):
        self.epochs, self.tasks = [], []

    def on_epoch_end(self, event):
        self.epochs.append((event.task, event.epoch, event.epochs, event.train_loss,
                            int(sum(int(c.sum()) for c in event.learner.store.write_counts()))))

    def on_task_end(self, event):
        self.tasks.append((event.task, dict(event.accuracy)))


@pytest.fixture(scope="module")
def hw_result(tmp_path_factory):
    out = tmp_path_factory.mktemp("api") / "run"
    recorder = Recorder()
    summary = archsim.run("smoke", hw="paper-130nm", overrides=SMALL, callbacks=[recorder], out=out)
    return summary, recorder, out


def test_run_returns_the_typed_result_and_calls_back_per_epoch_and_task(hw_result):
    summary, recorder, out = hw_result
    assert isinstance(summary, RunSummary) and summary.tasks == ["mnist", "fashion"]
    assert [(t, e, n) for t, e, n, _, _ in recorder.epochs] == [("mnist", 1, 1), ("fashion", 1, 2), ("fashion", 2, 2)]
    assert [loss for *_, loss, _ in recorder.epochs] == pytest.approx(
        summary.train_loss["mnist"] + summary.train_loss["fashion"], abs=1e-6)
    writes = [w for *_, w in recorder.epochs]
    assert writes == sorted(writes) and writes[-1] == summary.writes.total
    assert [t for t, _ in recorder.tasks] == ["mnist", "fashion"]
    for task, row in recorder.tasks:  # the summary rounds to 6 decimals
        assert row == pytest.approx(summary.accuracy[f"after:{task}"], abs=1e-6)
    # The folder holds the same result, read back through the model.
    assert RunSummary.load(out) == summary
    assert json.loads((out / "summary.json").read_text()) == summary.to_json_dict()


def test_to_frame_gives_the_accuracy_matrix_and_the_ledgers(hw_result):
    summary, _, _ = hw_result
    acc = summary.to_frame()
    assert list(acc.index) == ["after:mnist", "after:fashion"] and list(acc.columns) == ["mnist", "fashion"]
    assert np.isnan(acc.loc["after:mnist", "fashion"])
    assert acc.loc["after:fashion", "mnist"] == summary.accuracy["after:fashion"]["mnist"]
    energy = summary.to_frame("energy")
    assert list(energy.columns) == ["component", "action", "phase", "kind", "count", "busy_cycles", "energy_j"]
    assert energy["energy_j"].sum() == pytest.approx(summary.energy_j.total, rel=1e-9)
    assert energy[energy.kind == "leakage"]["energy_j"].sum() == pytest.approx(summary.energy_j.leakage, rel=1e-9)
    by_component = energy.groupby("component")["energy_j"].sum()
    for component, joules in summary.energy_j.by_component.items():
        assert by_component[component] == pytest.approx(joules, rel=1e-9)
    latency = summary.to_frame("latency")
    assert latency.loc["total", "seconds"] == summary.latency_s.total
    assert latency.loc["phase:backward", "cycles"] == summary.latency_cycles.by_phase["backward"]
    assert summary.final_accuracy == pytest.approx(np.mean(list(summary.accuracy["after:fashion"].values())))
    with pytest.raises(ValueError, match="choose accuracy"):
        summary.to_frame("nope")


def test_acceptance_one_liner():
    code = "import archsim; r = archsim.run('smoke', hw='paper-130nm'); print(r.to_frame())"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO,
                          env=dict(os.environ), timeout=300)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].split() == ["task", "mnist", "fashion"] and lines[2].startswith("after:mnist")


# -- the model: renames break, readers use the same names ----------------------------------------
def renamed_paths(summary: dict, model: type[BaseModel] = RunSummary, prefix: tuple = ()):
    """Every key of the JSON whose rename the model must reject: all keys of fixed sections and
    the required keys of open ones, recursively."""
    for key, value in summary.items():
        info = model.model_fields.get(key)
        if info is None:
            continue
        if issubclass(model, Section) or info.is_required():
            yield (*prefix, key)
        annotation = info.annotation
        args = [a for a in getattr(annotation, "__args__", ()) if isinstance(a, type) and issubclass(a, BaseModel)]
        sub = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else (args[0] if args else None)
        if sub is not None and isinstance(value, dict):
            yield from renamed_paths(value, sub, (*prefix, key))


def test_renaming_any_field_breaks_validation(hw_result):
    _, _, out = hw_result
    data = json.loads((out / "summary.json").read_text())
    paths = list(renamed_paths(data))
    assert ("energy_j", "by_component") in paths and ("writes", "max_per_device") in paths
    assert ("latency_s", "inference_per_image") in paths and ("device", "writes_total") in paths
    assert len(paths) > 60
    for path in paths:
        broken = json.loads(json.dumps(data))
        node = broken
        for key in path[:-1]:
            node = node[key]
        node[path[-1] + "_renamed"] = node.pop(path[-1])
        with pytest.raises(ValidationError):
            RunSummary.model_validate(broken)


def test_report_and_sweep_names_are_fields_of_the_model():
    from archsim.report.sweep_report import OBJECTIVES

    for objective in OBJECTIVES.values():
        for column in objective.columns:
            assert field_path_exists(column), column
    for path in ("energy_j.ledger", "writes.max_per_weight", "area_mm2.total", "area_mm2.by_component.adc",
                 "continual.test.backward_transfer", "latency_s.by_phase.eval"):
        assert field_path_exists(path), path
    assert not field_path_exists("energy_j.per_image")


def test_flat_columns_match_the_sweep_columns(hw_result):
    summary, _, _ = hw_result
    flat = summary.flat()
    assert flat["energy_j.per_inference_image"] == summary.energy_j.per_inference_image
    assert flat["accuracy.after:fashion.mnist"] == summary.accuracy["after:fashion"]["mnist"]
    assert not any(k.startswith("energy_j.ledger") for k in flat)
    assert all(v is None or isinstance(v, (bool, int, float, str)) for v in flat.values())


# -- packaging ---------------------------------------------------------------------------------
def test_version_presets_and_schema_commands():
    version = cli("--version")
    assert version.returncode == 0 and version.stdout.strip() == f"archsim {archsim.__version__}"
    presets = cli("presets")
    assert presets.returncode == 0, presets.stderr
    lines = presets.stdout.splitlines()
    for name in ("smoke", "paper-mnist-fmnist", "paper-130nm", "hfo2-device", "hfo2-130nm", "ideal"):
        assert sum(1 for line in lines if line.split()[:1] == [name]) == 1, name
    assert all(len(line.split()) > 1 for line in lines if line.startswith("  "))  # every preset described
    schema = cli("schema")
    assert schema.returncode == 0
    tree = json.loads(schema.stdout)
    assert {"accuracy", "energy_j", "latency_s", "writes", "area_mm2"} <= set(tree["properties"])
    assert tree["$defs"]["LedgerRow"]["properties"]["kind"]["enum"] == ["dynamic", "leakage"]


def test_license_citation_and_changelog():
    assert (REPO / "LICENSE").read_text().startswith("MIT License")
    cff = yaml.safe_load((REPO / "CITATION.cff").read_text())
    assert cff["cff-version"].startswith("1.2") and cff["version"] == archsim.__version__
    paper = cff["references"][0]
    assert paper["title"] == "Synaptic metaplasticity with multi-level memristive devices"
    assert paper["authors"][0]["family-names"] == "D'Agostino" and paper["year"] == 2023
    assert paper["identifiers"][0]["value"] == "arXiv:2306.12142"
    changelog = (REPO / "CHANGELOG.md").read_text()
    assert f"## [{archsim.__version__}]" in changelog


def test_no_citation_of_files_outside_the_repository():
    hits = []
    for folder in ("archsim", "hwconfigs", "workloads", "docs", "notebooks", "sweeps", "benchmarks", "tests"):
        for path in (REPO / folder).rglob("*"):
            if path.is_file() and path.suffix in {".py", ".yaml", ".md", ".ipynb"} and path.name != "test_api.py":
                text = path.read_text(encoding="utf-8", errors="ignore")
                if "DESIGN.md" in text or "DESIGN §" in text:
                    hits.append(str(path.relative_to(REPO)))
    readme = (REPO / "README.md").read_text()
    hits += ["README.md"] if "DESIGN.md" in readme or "DESIGN §" in readme else []
    assert hits == []


def test_hardware_file_names_a_device_preset_with_overrides(tmp_path):
    from archsim.config import load_run_config
    from archsim.devices import load_device_preset

    hw = tmp_path / "hw.yaml"
    hw.write_text("name: noisy\ndevice: {preset: hfo2-130nm, read_noise_sigma: 0.02}\n")
    config = load_run_config("smoke", hw, ["hardware.device.c2c_sigma=0.05"])
    preset = load_device_preset("hfo2-130nm")
    assert config.hardware.device == preset.model_copy(update={"read_noise_sigma": 0.02, "c2c_sigma": 0.05})
    for shipped in ("paper-130nm", "scaled-256-28nm", "hfo2-device"):
        assert load_run_config("smoke", shipped).hardware.device == preset
    hw.write_text("name: bad\ndevice: {preset: no-such-device}\n")
    proc = cli("memory", "smoke", "--hw", str(hw))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "'hardware.device'" in proc.stderr and "no such device preset" in proc.stderr
