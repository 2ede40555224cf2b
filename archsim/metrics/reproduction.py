"""From finished sweeps to the reproduction's numbers: the validation-only selection, the
per-seed table, the matched-size memory table and the hidden-weight width curve.

All three read a sweep folder (``results.parquet`` + ``sweep.yaml``, docs/sweeps.md). The
selection rule is written in docs/learning-rules.md, "Choosing the settings on validation
only"; :func:`select_setting` implements exactly that text. Every table row carries the
``archsim run`` command that reproduces it, checked here to resolve to the very
configuration the sweep ran (same point id).
"""

from __future__ import annotations

import json
import math
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import yaml

from archsim.config.loader import PRESET_DIR, read_yaml_mapping
from archsim.errors import ConfigError

MNIST_BAR = 96.5
"""The paper's pair (D'Agostino et al. 2023): MNIST after both tasks >= 96.5 % ..."""
FASHION_BAR = 85.5
"""... and Fashion-MNIST after Fashion-MNIST >= 85.5 %."""
WINDOW = (2.0, 3.0, 4.0)
"""m* values over which a setting must hold the pair (the paper's window)."""
SELECTION_KEYS_EXCLUDED = ("learning.m_star", "seed")


# -- reading a sweep folder ----------------------------------------------------------------
@dataclass
class SweepResults:
    """The ok points of a finished sweep and the spec it ran."""

    folder: Path
    spec: dict[str, Any]
    frame: pd.DataFrame

    @property
    def swept_keys(self) -> list[str]:
        keys = list(self.spec.get("grid", {}))
        keys += list((self.spec.get("random") or {}).get("space", {}))
        return keys

    def task_names(self) -> list[str]:
        config = json.loads(self.frame["config_json"].iloc[0])
        return [task["name"] for task in config["tasks"]]

    def validation_columns(self) -> tuple[str, str, str]:
        """Columns of the validation accuracy of (first task after itself, first task after
        the last, last task after itself); one-line ConfigError if the sweep held out none."""
        tasks = self.task_names()
        both_first, both_last = pair_columns("validation_accuracy", tasks)
        if both_first not in self.frame or both_last not in self.frame:
            raise ConfigError(f"{self.folder}: no validation accuracy ({both_first}); "
                              "hold out data.validation_size images")
        return f"validation_accuracy.after:{tasks[0]}.{tasks[0]}", both_first, both_last


def read_sweep(folder: str | Path) -> SweepResults:
    """The ok rows of ``folder/results.parquet``; one-line ConfigError if it is not a sweep."""
    folder = Path(folder)
    results, spec_path = folder / "results.parquet", folder / "sweep.yaml"
    if not results.is_file() or not spec_path.is_file():
        raise ConfigError(
            f"{folder}: not a finished sweep folder (needs results.parquet and sweep.yaml); "
            "run `archsim sweep SWEEP.yaml` (or --collect) first"
        )
    try:
        frame = pq.read_table(results).to_pandas()
    except Exception as exc:  # a damaged file: say which
        raise ConfigError(f"{results}: unreadable Parquet ({type(exc).__name__}); run `archsim sweep --collect`") from None
    frame = frame[frame["status"] == "ok"].reset_index(drop=True)
    if frame.empty:
        raise ConfigError(f"{results}: no finished (ok) point yet; run the sweep first")
    return SweepResults(folder, read_yaml_mapping(spec_path), frame)


def percent(value: Any) -> float:
    return float("nan") if value is None or pd.isna(value) else 100.0 * float(value)


def pair_columns(prefix: str, tasks: list[str]) -> tuple[str, str]:
    """Columns of (first task after the last task, last task after the last task)."""
    after = f"{prefix}.after:{tasks[-1]}"
    return f"{after}.{tasks[0]}", f"{after}.{tasks[-1]}"


# -- the selection rule --------------------------------------------------------------------
@dataclass
class Candidate:
    """One setting (every swept key but m* and seed) and its margins per m*."""

    setting: dict[str, Any]
    margins: dict[float, float]
    """m* -> worse of the two validation margins (points), mean over seeds."""
    order: int

    @property
    def score(self) -> float:
        """The worse margin minimised over the window; -inf if an m* of it is missing."""
        values = [self.margins.get(m, -math.inf) for m in WINDOW]
        return min(values)

    @property
    def mean_margin(self) -> float:
        values = [self.margins.get(m, -math.inf) for m in WINDOW]
        return sum(values) / len(values)

    def best_m_star(self) -> float:
        """Largest worse margin; ties go to the m* closest to the window's middle."""
        middle = WINDOW[len(WINDOW) // 2]
        return max(self.margins, key=lambda m: (self.margins[m], -abs(m - middle)))


def candidates(sweep: SweepResults) -> list[Candidate]:
    """Settings of the sweep with their per-m* worse margins on the validation split."""
    frame = sweep.frame
    scored = [c for c in frame.columns if c.startswith("accuracy.after:")]
    if scored and frame[scored].notna().any().any():
        raise ConfigError(
            f"{sweep.folder}: this sweep scored the test set; the selection must never see it: "
            "run a sweep with data.evaluate_test: false (sweeps/paper-selection.yaml)"
        )
    _, first, last = sweep.validation_columns()
    keys = [k for k in sweep.swept_keys if k not in SELECTION_KEYS_EXCLUDED]
    if "learning.m_star" not in frame:
        raise ConfigError(f"{sweep.folder}: the sweep does not vary learning.m_star; the rule needs m* in {WINDOW}")
    return candidates_from_runs(frame[keys + ["learning.m_star"]], frame[first].map(percent), frame[last].map(percent))


def candidates_from_runs(settings: pd.DataFrame, mnist_after_both: pd.Series, fashion: pd.Series) -> list[Candidate]:
    """Candidates from one row per run: the setting's columns (and ``learning.m_star``) and the
    two validation accuracies in percent; the worse margin of a run is the smaller of the two
    distances to the bars, averaged over the runs (seeds) of a setting and m*."""
    keys = [k for k in settings.columns if k != "learning.m_star"]
    worse = pd.concat([mnist_after_both - MNIST_BAR, fashion - FASHION_BAR], axis=1).min(
        axis=1, skipna=False).fillna(-math.inf)  # a missing accuracy never passes
    frame = settings.assign(_worse=worse, _key=settings[keys].astype(str).agg("|".join, axis=1) if keys else "")
    result: list[Candidate] = []
    for order, (_, group) in enumerate(frame.groupby("_key", sort=False)):
        setting = {k: _cell(group[k].iloc[0]) for k in keys}
        margins = group.groupby("learning.m_star")["_worse"].mean().to_dict()
        result.append(Candidate(setting, {float(m): float(v) for m, v in margins.items()}, order))
    return result


def select_setting(sweep: SweepResults) -> tuple[Candidate, list[Candidate]]:
    """The chosen setting and all candidates, best first (docs/learning-rules.md)."""
    return rank(candidates(sweep))


def rank(found: list[Candidate]) -> tuple[Candidate, list[Candidate]]:
    ranked = sorted(found, key=lambda c: (-c.score, -c.mean_margin, c.order))
    return ranked[0], ranked


def format_selection(source: str, chosen: Candidate, ranked: list[Candidate], test_command: str) -> str:
    """The margins table of every setting, the choice and the one command that scores the test set."""
    keys = list(chosen.setting)
    lines = [f"selection over {len(ranked)} settings of {source} (validation split only)",
             f"rule: maximise min over m* in {list(WINDOW)} of min(MNIST after both - {MNIST_BAR}, "
             f"Fashion - {FASHION_BAR}) (points; mean over seeds)", ""]
    widths = {k: max(len(k), *(len(json.dumps(c.setting[k])) for c in ranked)) for k in keys}
    header = "  ".join([k.rjust(widths[k]) for k in keys] + [f"m*={m:g}".rjust(8) for m in WINDOW] + ["   score"])
    lines.append(header)
    for c in ranked:
        cells = [json.dumps(c.setting[k]).rjust(widths[k]) for k in keys]
        cells += [f"{c.margins.get(m, math.nan):8.2f}" for m in WINDOW] + [f"{c.score:8.2f}"]
        lines.append("  ".join(cells))
    best_m = chosen.best_m_star()
    sets = chosen_overrides(chosen)
    verdict = ("holds the pair on validation across the window" if chosen.score >= 0
               else f"misses the pair on validation somewhere in the window by {-chosen.score:.2f} points")
    lines += ["", f"chosen: {', '.join(sets)} ({verdict})",
              f"shipped m*: {best_m:g} (largest worse margin of the chosen setting; ties to the middle)",
              "then score the test set once: " + test_command]
    return "\n".join(lines)


def chosen_overrides(chosen: Candidate) -> list[str]:
    """``key=value`` texts of the chosen setting and its shipped m*."""
    return [f"{k}={json.dumps(v)}" for k, v in chosen.setting.items()] + [f"learning.m_star={chosen.best_m_star():g}"]


def sweep_selection_text(sweep: SweepResults) -> str:
    """``archsim select SWEEP_DIR``: the rule applied to a finished sweep folder."""
    chosen, ranked = select_setting(sweep)
    command = run_command(sweep, chosen_overrides(chosen), seed=None, test=True)
    return format_selection(str(sweep.folder), chosen, ranked, command)


# -- the selection as a committed table ----------------------------------------------------
SELECTION_VALUE_COLUMNS = ["seed", "val_mnist_after_mnist", "val_mnist_after_fashion",
                           "val_fashion_after_fashion", "writes_total", "command", "commit"]


def selection_table(folders: list[str | Path]) -> pd.DataFrame:
    """One row per point of validation-only selection sweeps: the swept settings (JSON), the
    validation accuracies in percent (exact: 5 000 images make steps of 0.02 %), the command."""
    rows = []
    for folder in folders:
        sweep = read_sweep(folder)
        candidates(sweep)  # the same refusals as `archsim select` (test scored, no m*, ...)
        first_after_first, both_first, both_last = sweep.validation_columns()
        keys = [k for k in sweep.swept_keys if k != "seed"]
        for _, row in sweep.frame.iterrows():
            cells = {k: json.dumps(_cell(row[k])) for k in keys}
            rows.append({**cells,
                         "seed": int(row["seed"]),
                         "val_mnist_after_mnist": round(percent(row.get(first_after_first)), 2),
                         "val_mnist_after_fashion": round(percent(row[both_first]), 2),
                         "val_fashion_after_fashion": round(percent(row[both_last]), 2),
                         "writes_total": int(row["writes.total"]),
                         "command": checked_command(sweep, row),
                         "commit": str(row.get("code_commit", "unknown") or "unknown")})
    if not rows:
        raise ConfigError("table selection: no finished point in the given sweeps")
    return pd.DataFrame(rows, columns=[*rows[0].keys()])


def read_selection_csv(path: str | Path) -> pd.DataFrame:
    """A table written by ``archsim table selection`` (setting cells kept as their JSON text);
    one-line ConfigError if it is not one."""
    path = Path(path)
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise ConfigError(f"{path}: unreadable CSV ({type(exc).__name__}); write it with `archsim table selection`") from None
    missing = [c for c in [*SELECTION_VALUE_COLUMNS, "learning.m_star"] if c not in frame]
    if missing or frame.empty:
        raise ConfigError(f"{path}: not a selection table (missing {', '.join(missing) or 'rows'}); "
                          "write it with `archsim table selection SWEEP_DIR --out FILE.csv`")
    try:
        for column in ("val_mnist_after_fashion", "val_fashion_after_fashion", "learning.m_star"):
            frame[column] = frame[column].astype(float)
    except ValueError:
        raise ConfigError(f"{path}: a non-numeric accuracy or m*; write it with `archsim table selection`") from None
    return frame


def select_from_table(path: str | Path) -> tuple[Candidate, list[Candidate], pd.DataFrame]:
    """The rule applied to a committed selection table: chosen, ranked, and the table."""
    frame = read_selection_csv(path)
    keys = [c for c in frame.columns if c not in SELECTION_VALUE_COLUMNS]
    chosen, ranked = rank(candidates_from_runs(frame[keys], frame["val_mnist_after_fashion"],
                                               frame["val_fashion_after_fashion"]))
    return chosen, ranked, frame


def csv_selection_text(path: str | Path) -> str:
    """``archsim select FILE.csv``: the rule applied to a committed selection table."""
    chosen, ranked, frame = select_from_table(path)
    return format_selection(str(path), chosen, ranked, test_command_from_rows(frame, chosen))


def test_command_from_rows(frame: pd.DataFrame, chosen: Candidate) -> str:
    """A run of the chosen setting at its shipped m*, as its row's command without the seed,
    scoring the test set."""
    match = frame["learning.m_star"] == chosen.best_m_star()
    for key, value in chosen.setting.items():
        match &= frame[key].map(lambda cell, value=value: _cell(cell) == value)
    return str(RunCommand.parse(frame.loc[match, "command"].iloc[0]).scoring_test())


def _cell(value: Any) -> Any:
    """A swept value as read back from results.parquet: JSON texts parsed, numpy scalars made
    Python, and NaN made None again (a column mixing numbers and null, e.g. k-bit widths and
    float32, stores null as NaN; a configuration never holds NaN)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value.item() if hasattr(value, "item") else value


# -- commands that reproduce a row ---------------------------------------------------------
def preset_or_path(path: str | None, kind: str) -> str | None:
    """A shipped preset's name, or the path as the sweep recorded it.

    A file is the preset when it is the installed preset file, or a copy of it with the same
    name and the same bytes (a sweep run from another checkout of the same commit records
    that checkout's path; the command must still name what a user has)."""
    if path is None:
        return None
    recorded = Path(path)
    resolved = recorded.resolve()
    for candidate in (PRESET_DIR / kind).glob("*.yaml"):
        if candidate.resolve() == resolved:
            return candidate.stem
    shipped = PRESET_DIR / kind / recorded.name
    if recorded.suffix == ".yaml" and shipped.is_file() and recorded.is_file():
        if shipped.read_bytes() == recorded.read_bytes():
            return shipped.stem
    return str(path)


def set_text(key: str, value: Any) -> str:
    return f"{key}={yaml.safe_dump(value, default_flow_style=True, width=10**6).strip().removesuffix('...').strip()}"


def row_overrides(sweep: SweepResults, row: pd.Series) -> list[str]:
    """``--set`` texts of a point: the spec's ``set`` then its swept values."""
    texts = [set_text(k, v) for k, v in (sweep.spec.get("set") or {}).items()]
    texts += [set_text(k, _cell(row[k])) for k in sweep.swept_keys]
    return texts


@dataclass(frozen=True)
class RunCommand:
    """An ``archsim run`` command line: workload, ``--hw``, ``--seed`` and ``--set`` texts."""

    workload: str
    hardware: str | None = None
    seed: int | None = None
    sets: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> "RunCommand":
        """The parts of a command this module wrote (``archsim run WORKLOAD [--hw H] [--seed N] [--set K=V]...``)."""
        argv = shlex.split(text)
        if argv[:2] != ["archsim", "run"] or len(argv) < 3 or len(argv) % 2 == 0:
            raise ConfigError(f"not an `archsim run WORKLOAD [--option value]...` command: {text!r}")
        options = list(zip(argv[3::2], argv[4::2]))
        named = dict(options)
        return cls(argv[2], named.get("--hw"), int(named["--seed"]) if "--seed" in named else None,
                   tuple(value for flag, value in options if flag == "--set"))

    def scoring_test(self) -> "RunCommand":
        """The same run without its seed, with the test set scored."""
        sets = tuple(t for t in self.sets if not t.startswith("data.evaluate_test="))
        return RunCommand(self.workload, self.hardware, None, (*sets, "data.evaluate_test=true"))

    def __str__(self) -> str:
        parts = ["archsim", "run", self.workload]
        if self.hardware is not None:
            parts += ["--hw", self.hardware]
        if self.seed is not None:
            parts += ["--seed", str(self.seed)]
        for text in self.sets:
            parts += ["--set", text]
        return " ".join(shlex.quote(p) for p in parts)


def run_command(sweep: SweepResults, overrides: list[str], seed: int | None, test: bool = False) -> str:
    base = [set_text(k, v) for k, v in (sweep.spec.get("set") or {}).items()]
    command = RunCommand(preset_or_path(sweep.spec["workload"], "workloads"),
                         preset_or_path(sweep.spec.get("hardware"), "hwconfigs"), seed,
                         tuple(base + [t for t in overrides if t not in base]))
    return str(command.scoring_test() if test else command)


def checked_command(sweep: SweepResults, row: pd.Series) -> str:
    """The ``archsim run`` command of a point, proven to resolve to the point's configuration."""
    from archsim.config import load_run_config
    from archsim.sweep.points import point_id

    overrides = row_overrides(sweep, row)
    seed = int(row["seed"])
    workload = preset_or_path(sweep.spec["workload"], "workloads")
    hardware = preset_or_path(sweep.spec.get("hardware"), "hwconfigs")
    config = load_run_config(workload, hardware, overrides, seed)
    if point_id(config) != row["point_id"]:
        raise ConfigError(
            f"{sweep.folder}: point {row['point_id'][:12]}: the archsim run command does not "
            "rebuild its configuration (workload or hardware file changed since the sweep?); "
            "re-run the sweep from the same files"
        )
    return run_command(sweep, overrides[len(sweep.spec.get("set") or {}):], seed)


# -- per-seed table ------------------------------------------------------------------------
SEEDS_COLUMNS = ["seed", "m_star", "hardware", "mnist_after_mnist", "mnist_after_fashion",
                 "fashion_after_fashion", "writes_total", "command", "commit"]


def seeds_table(folders: list[str | Path]) -> pd.DataFrame:
    """One row per run of the given sweeps (test accuracy, percent with 2 decimals). A sweep
    that varies more than m* and the seed (e.g. the batch-norm variants) adds a column per
    swept key after ``hardware`` (a text as it is, any other value as JSON)."""
    rows = []
    variant_keys: list[str] = []
    for folder in folders:
        sweep = read_sweep(folder)
        tasks = sweep.task_names()
        first_after_first = f"accuracy.after:{tasks[0]}.{tasks[0]}"
        both_first, both_last = pair_columns("accuracy", tasks)
        if first_after_first not in sweep.frame:
            raise ConfigError(f"{sweep.folder}: the test set was not scored (data.evaluate_test: false); "
                              "the seeds table reports test accuracy")
        hardware = preset_or_path(sweep.spec.get("hardware"), "hwconfigs") or "none"
        variants = [k for k in sweep.swept_keys if k not in ("seed", "learning.m_star")]
        variant_keys += [k for k in variants if k not in variant_keys]
        for _, row in sweep.frame.iterrows():
            rows.append({
                "seed": int(row["seed"]),
                "m_star": float(row["m_star"]),
                "hardware": hardware,
                **{k: _variant_text(_cell(row[k])) for k in variants},
                "mnist_after_mnist": round(percent(row[first_after_first]), 2),
                "mnist_after_fashion": round(percent(row[both_first]), 2),
                "fashion_after_fashion": round(percent(row[both_last]), 2),
                "writes_total": int(row["writes.total"]),
                "command": checked_command(sweep, row),
                "commit": str(row.get("code_commit", "unknown") or "unknown"),
            })
    columns = [*SEEDS_COLUMNS[:3], *variant_keys, *SEEDS_COLUMNS[3:]]
    table = pd.DataFrame(rows, columns=columns)
    return table.sort_values(["hardware", "m_star", *variant_keys, "seed"], kind="stable").reset_index(drop=True)


def _variant_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


def seeds_summary(table: pd.DataFrame) -> str:
    """Mean +- sd per (hardware, m*), and the paired chip-minus-software difference."""
    variants = [c for c in table.columns[3:] if c not in SEEDS_COLUMNS]
    lines = ["hardware        m*   n   MNIST after MNIST   MNIST after Fashion   Fashion after Fashion"
             + "".join(f"   {k}" for k in variants)]
    for key, group in table.groupby(["hardware", "m_star", *variants], sort=True):
        hardware, m, *values = key
        cells = [f"{group[c].mean():7.2f} ± {group[c].std(ddof=1) if len(group) > 1 else 0:4.2f}"
                 for c in ("mnist_after_mnist", "mnist_after_fashion", "fashion_after_fashion")]
        lines.append(f"{hardware:<14}{m:4g} {len(group):3d}   {cells[0]:>17}   {cells[1]:>19}   {cells[2]:>21}"
                     + "".join(f"   {v:>{len(k)}}" for k, v in zip(variants, values)))
    software = table[table["hardware"] == "none"]
    for hardware, group in table[table["hardware"] != "none"].groupby("hardware"):
        paired = group.merge(software, on=["m_star", *variants, "seed"], suffixes=("", "_sw"))
        if paired.empty:
            continue
        for column in ("mnist_after_fashion", "fashion_after_fashion"):
            diff = paired[column] - paired[f"{column}_sw"]
            spread = diff.std(ddof=1) if len(diff) > 1 else 0.0
            lines.append(f"{hardware} - software, {column}: {diff.mean():+.2f} ± {spread:.2f} "
                         f"(paired over {len(diff)} seeds)")
    return "\n".join(lines)


# -- matched-size memory table -------------------------------------------------------------
MEMORY_COLUMNS = ["rule", "levels", "m_star", "hidden", "weights", "seeds", "val_mnist_after_fashion",
                  "val_fashion_after_fashion", "reaches_pair", "bits_total", "bits_with_optimizer",
                  "command", "commit"]


def setting_key(config_json: str) -> str:
    """A point's configuration without its seed: the points of one setting share it."""
    config = json.loads(config_json)
    config.pop("seed", None)
    return json.dumps(config, sort_keys=True)


def memory_table(folders: list[str | Path]) -> pd.DataFrame:
    """One row per setting (network size, and m* where a sweep varies it; mean over seeds) of
    the size sweeps, validation accuracy only."""
    rows = []
    for folder in folders:
        sweep = read_sweep(folder)
        _, first, last = sweep.validation_columns()
        for _, group in sweep.frame.groupby(sweep.frame["config_json"].map(setting_key), sort=False):
            head = group.iloc[0]
            config = json.loads(head["config_json"])
            val_first = group[first].map(percent).mean()
            val_last = group[last].map(percent).mean()
            rows.append({
                "rule": config["learning"]["rule"],
                "levels": int(config["model"]["levels"]),
                "m_star": float(config["learning"]["m_star"]),
                "hidden": "-".join(str(h) for h in config["model"]["hidden"]),
                "weights": int(head["memory_bits.weights"]),
                "seeds": len(group),
                "val_mnist_after_fashion": round(val_first, 2),
                "val_fashion_after_fashion": round(val_last, 2),
                "reaches_pair": bool(val_first >= MNIST_BAR and val_last >= FASHION_BAR),
                "bits_total": int(head["memory_bits.total"]),
                "bits_with_optimizer": int(head["memory_bits.total"]) + int(head["memory_bits.optimizer_state"]),
                "command": checked_command(sweep, head),
                "commit": str(head.get("code_commit", "unknown") or "unknown"),
            })
    return pd.DataFrame(rows, columns=MEMORY_COLUMNS).sort_values(["rule", "weights", "m_star"]).reset_index(drop=True)


# -- hidden-weight width curve -------------------------------------------------------------
HIDDEN_BITS_COLUMNS = ["hidden_weight_bits", "hidden_rounding", "seed", "val_mnist_after_mnist",
                       "val_mnist_after_fashion", "val_fashion_after_fashion", "reaches_pair",
                       "writes_total", "dpu_bits", "command", "commit"]
HIDDEN_BITS_KEYS = ("learning.hidden_weight_bits", "learning.hidden_rounding", "seed")


def hidden_bits_table(folders: list[str | Path]) -> pd.DataFrame:
    """One row per run of sweeps over the DPU's hidden-weight width k (and its rounding):
    validation accuracy in percent, whether the paper's pair holds, the writes and the DPU's
    bits. A sweep that varies anything else is refused: the curve compares widths of one
    configuration."""
    rows = []
    for folder in folders:
        sweep = read_sweep(folder)
        other = [k for k in sweep.swept_keys if k not in HIDDEN_BITS_KEYS]
        if other:
            raise ConfigError(f"{sweep.folder}: the sweep also varies {', '.join(other)}; the hidden-bits "
                              "table compares widths of one configuration (sweeps/hidden-bits-*.yaml)")
        first_after_first, both_first, both_last = sweep.validation_columns()
        for _, row in sweep.frame.iterrows():
            learning = json.loads(row["config_json"])["learning"]
            bits = learning.get("hidden_weight_bits")
            val_first, val_last = percent(row[both_first]), percent(row[both_last])
            rows.append({
                "_point": row["point_id"],  # a point run by two of the sweeps is one row
                "hidden_weight_bits": "float32" if bits is None else str(int(bits)),
                "hidden_rounding": learning["hidden_rounding"] if bits is not None else "none",
                "seed": int(row["seed"]),
                "val_mnist_after_mnist": round(percent(row.get(first_after_first)), 2),
                "val_mnist_after_fashion": round(val_first, 2),
                "val_fashion_after_fashion": round(val_last, 2),
                "reaches_pair": bool(val_first >= MNIST_BAR and val_last >= FASHION_BAR),
                "writes_total": int(row["writes.total"]),
                "dpu_bits": int(row["memory_bits.dpu"]),
                "command": checked_command(sweep, row),
                "commit": str(row.get("code_commit", "unknown") or "unknown"),
            })
    if not rows:
        raise ConfigError("table hidden-bits: no finished point in the given sweeps")
    table = pd.DataFrame(rows).drop_duplicates(subset="_point")
    width = table["hidden_weight_bits"].map(lambda k: 10**6 if k == "float32" else int(k))
    table = table.assign(_width=width).sort_values(["hidden_rounding", "_width", "seed"], kind="stable")
    return table[HIDDEN_BITS_COLUMNS].reset_index(drop=True)
