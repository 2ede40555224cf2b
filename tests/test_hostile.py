"""Hostile inputs and faults, round two: never destroy, never lose, never run away.

Every case runs the real CLI in its own process under a 2 GiB address-space limit (forked
from tests/hostile_server.py, which has archsim imported and the datasets loaded) in a
folder holding a user's files, and asserts: the documented exit code; for a failure exactly
one line ``archsim: error: ...`` naming the problem and no traceback; at most 60 s and 2 GiB;
every file of the user's still there, byte for byte; and no staging, lock or half-written
result left behind. Most cases fail during validation, before any training; the few that
need a finished training use a tiny workload (300 images, 16 hidden units, one epoch) and
inject the late fault (full disk, read-only folder, non-finite value) in the child.
A few end-to-end cases at the bottom run ``python -m archsim.cli`` from scratch.
"""

from __future__ import annotations

import fcntl
import gzip
import json
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
MEMORY_LIMIT = 2 * 2**30
CASE_TIMEOUT_S = 60


# -- the fork server ---------------------------------------------------------------------------
class Server:
    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "hostile_server.py"), str(MEMORY_LIMIT)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=REPO,
            env={**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"},
        )
        assert self.proc.stdout.readline().strip() == "ready"

    def run(self, case: dict) -> dict:
        self.proc.stdin.write(json.dumps(case) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        assert line, "the hostile fork server died"
        return json.loads(line)

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def server():
    srv = Server()
    yield srv
    srv.close()


# -- the user's world --------------------------------------------------------------------------
TINY = {
    "name": "tiny",
    "tasks": [{"name": "mnist", "dataset": "mnist", "epochs": 1, "train_limit": 300, "test_limit": 200}],
    "model": {"hidden": [16], "levels": 3, "init_width": 1.0},
    "learning": {"batch_size": 100},
    "data": {"validation_size": 100},
}


def workload(folder: Path, file: str = "w.yaml", **changes) -> str:
    tree = json.loads(json.dumps(TINY))
    for dotted, value in changes.items():
        node = tree
        keys = dotted.split("__")
        for key in keys[:-1]:
            node = node.setdefault(key, {})
        node[keys[-1]] = value
    (folder / file).write_text(yaml.safe_dump(tree))
    return file


def sweep(folder: Path, file: str = "s.yaml", **fields) -> str:
    workload(folder)
    spec = {"name": "hostile", "workload": "w.yaml", "grid": {"learning.m_star": [0, 1]}, **fields}
    (folder / file).write_text(yaml.safe_dump(spec))
    return file


EARLIER_SUMMARY = {
    "archsim_version": "0", "workload": "earlier", "seed": 0, "rule": "qnn-meta", "m_star": 0.0,
    "accuracy": {}, "validation_accuracy": {}, "train_loss": {},
    "writes": {"total": 0, "max_per_device": 0, "mean_per_device": 0.0, "pulses_total": 0,
               "stuck_devices": 0, "weights": 1},
    "memory_bits": {"weights": 1, "total": 34, "bnn_equivalent": 66, "saving_vs_bnn": 1.94, "formula": "f"},
}
"""A valid summary.json (archsim.results.RunSummary) of a run that evaluated nothing."""


def marked_run(folder: Path) -> Path:
    """A run folder as archsim writes it (marker included)."""
    folder.mkdir(parents=True)
    (folder / "summary.json").write_text(json.dumps(EARLIER_SUMMARY) + "\n")
    (folder / "config.yaml").write_text("name: earlier\n")
    (folder / ".archsim-run").write_text(json.dumps({"made_by": "archsim", "kind": "run", "version": "0", "files": []}))
    return folder


def snapshot(root: Path) -> dict[str, object]:
    """Every path under ``root``: a small file -> its bytes, a large one (the 3 GiB sparse
    data file) -> (size, mtime), a folder or link -> None."""
    found: dict[str, object] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(root))
            if path.is_symlink() or not path.is_file():
                found[rel] = None
            elif path.stat().st_size > 2**20:
                found[rel] = (path.stat().st_size, path.stat().st_mtime_ns)
            else:
                found[rel] = path.read_bytes()
    return found


@dataclass
class Case:
    argv: list[str]
    code: int
    says: str = ""
    fault: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    umask: int | None = None
    sigint_after: float | None = None
    replaced: tuple[str, ...] = ()
    """Paths (relative to the user folder) the case asked archsim to replace."""
    new_ok: tuple[str, ...] = ()
    """Prefixes of paths the case may create (results, .incomplete)."""
    check: Callable[[Path, dict, str, str], None] | None = None
    cwd: str = "."
    lock: str | None = None
    """A target (relative) whose lock the test holds, as a concurrent archsim would."""


CASES: dict[str, tuple[str, Callable[[Path], Case]]] = {}


def case(kind: str):
    def register(fn: Callable[[Path], Case]) -> Callable[[Path], Case]:
        CASES[f"{kind}:{fn.__name__}"] = (kind, fn)
        return fn

    return register


def run_case(server: Server, tmp_path: Path, make: Callable[[Path], Case]) -> None:
    home = tmp_path / "home"
    user = home / "work"
    user.mkdir(parents=True)
    (user / "precious.txt").write_text("the user's own notes\n")
    (user / "data").mkdir()
    (user / "data" / "measurements.csv").write_text("a,b\n1,2\n")
    (home / "thesis.tex").write_text("\\chapter{x}\n")
    spec = make(user)
    before = snapshot(home)
    held = None
    if spec.lock is not None:
        held = hold_lock(user / spec.lock)
    try:
        result = server.run({
            "argv": spec.argv, "cwd": str(user / spec.cwd), "stdout": str(tmp_path / "stdout"),
            "stderr": str(tmp_path / "stderr"), "fault": spec.fault, "timeout": CASE_TIMEOUT_S,
            "env": {"HOME": str(home), "COLUMNS": "200", **spec.env},
            "sigint_after": spec.sigint_after,
            **({"umask": spec.umask} if spec.umask is not None else {}),
        })
    finally:
        if held is not None:
            os.close(held)
            os.unlink(user / lock_name(spec.lock))
    stdout = (tmp_path / "stdout").read_text(errors="replace")
    stderr = (tmp_path / "stderr").read_text(errors="replace")
    assert result["code"] is not None, f"case did not finish in {CASE_TIMEOUT_S} s"
    assert result["seconds"] < CASE_TIMEOUT_S
    assert result["maxrss_kb"] * 1024 < MEMORY_LIMIT
    assert "Traceback" not in stderr, stderr
    assert result["code"] == spec.code, (result, stdout, stderr)
    lines = [line for line in stderr.splitlines() if line.strip()]
    if spec.code != 0:
        assert len(lines) == 1 and lines[0].startswith("archsim: error: "), stderr
        assert spec.says in lines[0], lines[0]
    after = snapshot(home)
    for rel, content in before.items():
        if any(rel == r or rel.startswith(f"work/{r}/") or rel == f"work/{r}" for r in spec.replaced):
            continue
        assert rel in after, f"{rel} of the user's was deleted"
        assert after[rel] == content, f"{rel} of the user's was changed"
    created = sorted(set(after) - set(before))
    leftovers = [p for p in created if Path(p).name.endswith((".partial", ".lock", ".tmp", ".old"))]
    assert not leftovers, leftovers
    unexpected = [p for p in created if not any(p.startswith(f"work/{n}") for n in spec.new_ok)]
    assert not unexpected, f"created {unexpected}"
    if spec.check is not None:
        spec.check(user, result, stdout, stderr)


def lock_name(target: str) -> str:
    path = Path(target)
    return str(path.parent / f".{path.name}.lock")


def hold_lock(target: Path) -> int:
    """Hold ``target``'s lock as a running archsim does (flock on .<name>.lock)."""
    fd = os.open(target.parent / f".{target.name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.write(fd, b"4242\n")
    return fd


# == kind: destroy (--force, protected folders, foreign files, locks) ============================
@case("destroy")
def out_dot_force(user):
    return Case(["run", workload(user), "--out", ".", "--force"], 4, "current folder")


@case("destroy")
def out_dot_no_force(user):
    return Case(["run", workload(user), "--out", "."], 4, "current folder")


@case("destroy")
def out_parent_force(user):
    return Case(["run", workload(user), "--out", "..", "--force"], 4, "--out ..")


@case("destroy")
def out_home_force(user):
    return Case(["run", workload(user), "--out", str(user.parent), "--force"], 4, "home folder")


@case("destroy")
def out_root_force(user):
    return Case(["run", workload(user), "--out", "/", "--force"], 4, "root folder")


@case("destroy")
def out_cwd_absolute_force(user):
    return Case(["run", workload(user), "--out", str(user), "--force"], 4, "current folder")


@case("destroy")
def out_dotdot_back_to_cwd_force(user):
    return Case(["run", workload(user), "--out", "data/..", "--force"], 4, "current folder")


@case("destroy")
def out_user_folder_force(user):
    return Case(["run", workload(user), "--out", "data", "--force"], 4, ".archsim-run")


@case("destroy")
def out_user_folder_no_force(user):
    return Case(["run", workload(user), "--out", "data"], 4, "--force")


@case("destroy")
def out_run_folder_with_user_file_force(user):
    marked_run(user / "earlier")
    (user / "earlier" / "my-plot.png").write_bytes(b"\x89PNG")
    return Case(["run", workload(user), "--out", "earlier", "--force"], 4, "my-plot.png")


@case("destroy")
def out_legacy_looking_folder_with_user_files_force(user):
    folder = user / "looks-like-a-run"
    folder.mkdir()
    for name in ("summary.json", "config.yaml", "data.csv"):
        (folder / name).write_text("x\n")
    return Case(["run", workload(user), "--out", "looks-like-a-run", "--force"], 4, "data.csv")


@case("destroy")
def out_is_users_file_force(user):
    return Case(["run", workload(user), "--out", "precious.txt", "--force"], 4, "not a folder")


@case("destroy")
def out_locked_by_another_run(user):
    return Case(["run", workload(user), "--out", "r"], 4, "another archsim process (pid 4242)", lock="r")


@case("destroy")
def out_locked_by_another_run_force(user):
    marked_run(user / "earlier")
    return Case(["run", workload(user), "--out", "earlier", "--force"], 4, "another archsim process", lock="earlier")


@case("destroy")
def sweep_out_dot(user):
    return Case(["sweep", sweep(user), "--out", ".", "--serial"], 4, "current folder")


@case("destroy")
def sweep_output_dotdot_in_spec(user):
    return Case(["sweep", sweep(user, output="../.."), "--serial"], 4, "parent of the current folder")


@case("destroy")
def sweep_out_user_folder(user):
    (user / "data" / "sweep.yaml").write_text("my own notes called sweep.yaml\n")
    (user / "data" / "results.parquet").write_text("not a parquet, mine\n")
    return Case(["sweep", sweep(user), "--out", "data", "--serial"], 4, "did not write")


@case("destroy")
def sweep_dry_run_out_home(user):
    return Case(["sweep", sweep(user), "--out", str(user.parent), "--dry-run"], 4, "home folder")


@case("destroy")
def sweep_locked_by_another_sweep(user):
    return Case(["sweep", sweep(user), "--out", "sw", "--serial"], 4, "another archsim process", lock="sw")


def fake_run(user: Path) -> str:
    """A run folder outside the user's working folder (``tmp_path/elsewhere/r``)."""
    return str(marked_run(user.parent.parent / "elsewhere" / "r"))


def caches(user: Path) -> dict[str, str]:
    """matplotlib's and fontconfig's caches, outside the user's home of the case."""
    root = user.parent.parent / "caches"
    return {"MPLCONFIGDIR": str(root / "mpl"), "XDG_CACHE_HOME": str(root / "xdg")}


@case("destroy")
def report_out_dot_with_a_report_md(user):
    (user / "report.md").write_text("# my own report\n")
    return Case(["report", fake_run(user), "--out", "."], 4, "does not write (data, precious.txt)", env=caches(user))


@case("destroy")
def report_out_dot_holding_only_report_files(user):
    (user / "reports").mkdir()
    (user / "reports" / "report.md").write_text("# my own report\n")
    (user / "reports" / "figure.png").write_bytes(b"\x89PNG")
    return Case(["report", fake_run(user), "--out", "."], 4, "current folder", env=caches(user), cwd="reports")


@case("destroy")
def report_out_folder_with_report_md_and_notes(user):
    (user / "data" / "report.md").write_text("# my own report\n")
    return Case(["report", fake_run(user), "--out", "data"], 4, "measurements.csv", env=caches(user))


@case("destroy")
def table_out_is_users_folder_force(user):
    return Case(["table", "seeds", "sw", "--out", "data", "--force"], 4, "is a folder")


@case("destroy")
def table_out_is_users_file(user):
    return Case(["table", "seeds", "sw", "--out", "precious.txt"], 4, "file exists")


def _replaced_earlier_run(user, result, stdout, stderr):
    summary = json.loads((user / "earlier" / "summary.json").read_text())
    assert summary["accuracy"]["after:mnist"]["mnist"] > 0
    assert json.loads((user / "earlier" / ".archsim-run").read_text())["kind"] == "run"


@case("destroy")
def force_replaces_archsims_own_folder(user):
    marked_run(user / "earlier")
    return Case(["run", workload(user), "--out", "earlier", "--force", "--quiet"], 0,
                replaced=("earlier",), new_ok=("earlier",), check=_replaced_earlier_run)


# == kind: names that become paths ================================================================
def _only_under_runs(user, result, stdout, stderr):
    made = list((user / "runs").iterdir())
    assert len(made) == 1 and made[0].name.startswith("etc-passwd-"), made
    assert (made[0] / "summary.json").is_file()
    assert not (user.parent / "etc").exists() and not (user.parent.parent / "etc").exists()


@case("names")
def workload_name_escapes_runs(user):
    return Case(["run", workload(user, **{"name": "../../etc/passwd"}), "--quiet"], 0,
                new_ok=("runs",), check=_only_under_runs)


def _short_name_under_runs(user, result, stdout, stderr):
    made = list((user / "runs").iterdir())
    assert len(made) == 1 and len(made[0].name) < 130 and (made[0] / "summary.json").is_file()


@case("names")
def workload_name_very_long_and_absolute(user):
    return Case(["run", workload(user, **{"name": "/" + "x" * 5000}), "--quiet"], 0,
                new_ok=("runs",), check=_short_name_under_runs)


@case("names")
def workload_name_with_nul(user):
    return Case(["run", workload(user, **{"name": "a\x00b"})], 2, "NUL")


@case("names")
def set_name_with_nul(user):
    return Case(["run", workload(user), "--set", 'name="a\\0b"'], 2, "NUL")


@case("names")
def sweep_name_escapes(user):
    return Case(["sweep", sweep(user, name="../../x"), "--dry-run"], 2, "name")


@case("names")
def sweep_name_too_long(user):
    return Case(["sweep", sweep(user, name="s" * 300), "--dry-run"], 2, "name")


@case("names")
def sweep_output_with_nul(user):
    return Case(["sweep", sweep(user, output="a\x00b"), "--dry-run"], 2, "NUL")


@case("names")
def data_dir_with_nul(user):
    return Case(["run", workload(user, **{"data__data_dir": "x\x00y"})], 2, "NUL")


# == kind: paths checked before training ==========================================================
@case("paths")
def out_is_symlink_to_folder(user):
    (user / "link").symlink_to(user / "data")
    return Case(["run", workload(user), "--out", "link", "--force"], 4, "symbolic link")


@case("paths")
def out_is_dangling_symlink(user):
    (user / "dangling").symlink_to(user / "nowhere")
    return Case(["run", workload(user), "--out", "dangling"], 4, "dangling symbolic link")


@case("paths")
def out_through_symlink_loop(user):
    (user / "loop-a").symlink_to(user / "loop-b")
    (user / "loop-b").symlink_to(user / "loop-a")
    return Case(["run", workload(user), "--out", "loop-a/run"], 4, "loop")


@case("paths")
def out_name_fits_only_without_suffix(user):
    return Case(["run", workload(user), "--out", "n" * 250], 4, "staging suffix")


@case("paths")
def out_name_too_long(user):
    return Case(["run", workload(user), "--out", "n" * 300], 4, "shorter name")


@case("paths")
def out_path_too_long(user):
    return Case(["run", workload(user), "--out", "/".join(["d" * 200] * 25)], 4, "longer than")


@case("paths")
def out_under_a_file(user):
    return Case(["run", workload(user), "--out", "precious.txt/run"], 4, "--out precious.txt/run")


@case("paths")
def out_on_read_only_filesystem(user):
    return Case(["run", workload(user), "--out", "/sys/archsim-run"], 4, "cannot write")


@case("paths")
def trace_is_a_folder(user):
    return Case(["run", workload(user), "--hw", "paper-130nm", "--out", "r", "--trace", "data"], 4, "is a folder")


@case("paths")
def trace_is_users_file(user):
    return Case(["run", workload(user), "--hw", "paper-130nm", "--out", "r", "--trace", "precious.txt"], 4, "file exists")


@case("paths")
def trace_is_dangling_symlink(user):
    (user / "t.json").symlink_to(user / "nowhere" / "t.json")
    return Case(["run", workload(user), "--hw", "paper-130nm", "--out", "r", "--trace", "t.json"], 4, "symbolic link")


@case("paths")
def trace_on_read_only_filesystem(user):
    return Case(["run", workload(user), "--hw", "paper-130nm", "--out", "r", "--trace", "/proc/trace.json"], 4, "--trace")


@case("paths")
def trace_name_too_long(user):
    return Case(["run", workload(user), "--hw", "paper-130nm", "--out", "r", "--trace", "t" * 256], 4, "--trace")


# == kind: memory estimated before anything is built =============================================
@case("memory")
def hidden_billion(user):
    return Case(["run", workload(user, **{"model__hidden": [1_000_000_000]})], 2, "needs about")


@case("memory")
def hidden_billion_on_chip(user):
    return Case(["run", workload(user, **{"model__hidden": [1_000_000_000]}), "--hw", "paper-130nm"], 2, "needs about")


@case("memory")
def two_wide_layers(user):
    return Case(["run", workload(user, **{"model__hidden": [100_000, 100_000]})], 2, "model.hidden")


@case("memory")
def billion_tiles(user):
    return Case(["run", workload(user), "--hw", "paper-130nm", "--set", "hardware.tile.count=1000000000"], 2, "tile.count")


@case("memory")
def huge_batches_wide_layer(user):
    return Case(["run", workload(user, **{"model__hidden": [200_000]}), "--set", "learning.batch_size=60000"], 2, "needs about")


@case("memory")
def sweep_point_too_big(user):
    return Case(["sweep", sweep(user, grid={"model.hidden": [[16], [1_000_000_000]]}), "--dry-run"], 2, "largest point")


@case("memory")
def sweep_grid_nine_keys_of_ten(user):
    grid = {f"tasks.0.{k}": list(range(1, 11)) for k in ("epochs", "train_limit", "test_limit")}
    grid.update({f"learning.{k}": [0.1 * i for i in range(1, 11)] for k in ("m_star",)})
    grid.update({f"learning.optimizer.{k}": [0.001 * i for i in range(1, 11)] for k in ("lr", "weight_decay")})
    grid.update({"model.init_width": [0.1 * i for i in range(1, 11)], "learning.batch_size": list(range(10, 110, 10)),
                 "data.validation_size": list(range(100, 1100, 100))})
    return Case(["sweep", sweep(user, grid=grid), "--dry-run"], 2, "1,000,000,000 points")


@case("memory")
def sweep_million_random_samples(user):
    random = {"samples": 1_000_000, "space": {"learning.m_star": {"uniform": [0, 4]}}}
    return Case(["sweep", sweep(user, grid={}, random=random), "--dry-run"], 2, "1,000,000 points")


@case("memory")
def sweep_many_seeds(user):
    return Case(["sweep", sweep(user, seeds=list(range(20_000))), "--dry-run"], 2, "20,000 seed(s)")


@case("memory")
def sweep_alias_grid_counted(user):
    workload(user)
    lines = ["name: bomb", "workload: w.yaml", "grid:", "  learning.m_star: &v [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]"]
    lines += [f"  learning.optimizer.{k}: *v" for k in ("lr", "beta1", "beta2", "eps", "weight_decay")]
    lines += ["  model.init_width: *v", "  learning.hidden_clip: *v", "  tasks.0.epochs: *v"]
    (user / "s.yaml").write_text("\n".join(lines) + "\n")
    return Case(["sweep", "s.yaml", "--dry-run"], 2, "1,000,000,000 points")


# 100 x 100 = 10 000 points, the cap: several seconds of planning on any machine.
GRID_AT_CAP = {"learning.m_star": [0.01 * i for i in range(100)],
               "learning.optimizer.lr": [0.0001 * i for i in range(1, 101)]}


def _sigint_promptly(user, result, stdout, stderr):
    assert result["sigint_to_exit_s"] is not None and result["sigint_to_exit_s"] < 10, result
    assert not (user / "sweeps-out").exists()


@case("memory")
def sigint_during_sweep_planning(user):
    return Case(["sweep", sweep(user, grid=GRID_AT_CAP), "--dry-run"], 130, "SIGINT", sigint_after=1.0,
                check=_sigint_promptly)


# == kind: bounded reading ========================================================================
def _yaml_case(user, text: str, says: str, code: int = 2) -> Case:
    (user / "w.yaml").write_text(text)
    return Case(["run", "w.yaml"], code, says)


@case("reading")
def yaml_deep_flow(user):
    return _yaml_case(user, "a: " + "[" * 20000 + "]" * 20000 + "\n", "nested deeper")


@case("reading")
def yaml_deep_block(user):
    return _yaml_case(user, "\n".join(" " * i + "a:" for i in range(500)) + " 1\n", "nested deeper")


@case("reading")
def json_deep_as_yaml(user):
    return _yaml_case(user, '{"a": ' * 20000 + "1" + "}" * 20000, "nested deeper")


@case("reading")
def yaml_billion_laughs(user):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    return _yaml_case(user, "\n".join(lines) + "\n", "aliases are expanded")


@case("reading")
def yaml_too_many_aliases(user):
    return _yaml_case(user, "a: &a 1\nb: [" + ", ".join(["*a"] * 2000) + "]\n", "alias uses")


@case("reading")
def yaml_self_referencing_alias(user):
    return _yaml_case(user, "a: &a [1, *a]\nname: x\n", "contains it")


@case("reading")
def yaml_file_too_large(user):
    return _yaml_case(user, "# " + "x" * (5 * 2**20) + "\nname: x\n", "larger than")


@case("reading")
def set_value_nested_deep(user):
    return Case(["run", workload(user), "--set", "model.hidden=" + "[" * 200 + "]" * 200], 2, "nested deeper")


@case("reading")
def hardware_yaml_bomb(user):
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    (user / "hw.yaml").write_text("\n".join(lines) + "\n")
    return Case(["run", workload(user), "--hw", "hw.yaml"], 2, "aliases are expanded")


@case("reading")
def sweep_spec_deep(user):
    workload(user)
    (user / "s.yaml").write_text("name: x\nworkload: w.yaml\ngrid: " + "[" * 5000 + "]" * 5000 + "\n")
    return Case(["sweep", "s.yaml", "--dry-run"], 2, "nested deeper")


def data_copy(user: Path, damaged: str, content: bytes | None = None, sparse_size: int | None = None) -> str:
    """A data folder linking the real files, with ``damaged`` (an MNIST file name) replaced."""
    from archsim.data import find_dataset_dir

    root = user / "mydata"
    for name in ("mnist", "fashion-mnist"):
        (root / name).mkdir(parents=True)
        for source in find_dataset_dir(name).iterdir():
            if source.name.endswith("-ubyte") or source.name.endswith("-ubyte.gz"):
                (root / name / source.name).symlink_to(source)
    for existing in (root / "mnist").glob(damaged.removesuffix(".gz") + "*"):
        existing.unlink()
    target = root / "mnist" / damaged
    if sparse_size is not None:
        with open(target, "wb") as handle:
            handle.truncate(sparse_size)
    else:
        target.write_bytes(content or b"")
    return "mydata"


def gzip_bomb(size: int) -> bytes:
    """A valid gzip member of ``size`` zero bytes (about size/1000 compressed)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(2**20)
    parts = [packer.compress(block) for _ in range(size // len(block))]
    return b"".join(parts) + packer.flush()


@case("reading")
def gzip_bomb_labels(user):
    data = data_copy(user, "train-labels-idx1-ubyte.gz", gzip_bomb(96 * 2**20))
    return Case(["run", workload(user), "--data-dir", data], 3, "decompresses to more than")


@case("reading")
def huge_raw_images_file(user):
    data = data_copy(user, "train-images-idx3-ubyte", sparse_size=3 * 2**30)
    return Case(["run", workload(user), "--data-dir", data], 3, "is more than")


@case("reading")
def idx_header_claims_billions(user):
    header = (2051).to_bytes(4, "big") + (2**31).to_bytes(4, "big") + (28).to_bytes(4, "big") * 2
    data = data_copy(user, "train-images-idx3-ubyte.gz", gzip.compress(header + bytes(784)))
    return Case(["run", workload(user), "--data-dir", data], 3, "truncated")


@case("reading")
def report_summary_deep_json(user):
    folder = user / "r"
    folder.mkdir()
    (folder / "summary.json").write_text("[" * 100000 + "]" * 100000)
    return Case(["report", "r"], 3, "nested deeper")


def _report_notes_config(user, result, stdout, stderr):
    report = user.parent.parent / "elsewhere" / "r" / "report" / "report.md"
    assert "config.yaml cannot be read (InputTooLarge)" in report.read_text()


@case("reading")
def report_of_run_with_deep_config_yaml(user):
    run = fake_run(user)
    (Path(run) / "config.yaml").write_text("a: " + "[" * 20000 + "]" * 20000 + "\n")
    return Case(["report", run], 0, env=caches(user), check=_report_notes_config)


# == kind: strict types ===========================================================================
@case("types")
def lr_yes(user):
    return Case(["run", workload(user), "--set", "learning.optimizer.lr=yes"], 2, "boolean")


@case("types")
def m_star_true_in_yaml(user):
    return Case(["run", workload(user, **{"learning__m_star": True})], 2, "learning.m_star")


@case("types")
def hidden_list_with_boolean(user):
    return Case(["run", workload(user, **{"model__hidden": [True]})], 2, "boolean")


@case("types")
def layer_list_shapes_do_not_chain(user):
    layers = [{"type": "conv2d", "out_channels": 4, "kernel": 3}, {"type": "dense", "units": 32},
              {"type": "pool2d", "kernel": 2}, {"type": "dense", "units": 10}]
    return Case(["run", workload(user, model__hidden=None, model__layers=layers)], 2,
                "model.layers[2] (pool2d) must follow a conv2d")


@case("types")
def conv_kernel_larger_than_its_input(user):
    layers = [{"type": "conv2d", "out_channels": 4, "kernel": 5, "stride": 5},
              {"type": "conv2d", "out_channels": 4, "kernel": 7}, {"type": "dense", "units": 10}]
    return Case(["run", workload(user, model__hidden=None, model__layers=layers), "--hw", "paper-130nm"], 2,
                "model.layers[1] (conv2d): kernel 7 is larger than its padded 4x5x5 input")


@case("types")
def epochs_on(user):
    return Case(["run", workload(user), "--set", "tasks.0.epochs=on"], 2, "tasks.0.epochs")


@case("types")
def batch_size_no(user):
    return Case(["run", workload(user), "--set", "learning.batch_size=no"], 2, "boolean")


@case("types")
def seed_true(user):
    return Case(["run", workload(user), "--set", "seed=true"], 2, "seed")


@case("types")
def sigma_list_with_boolean(user):
    return Case(["run", workload(user), "--hw", "hfo2-device", "--set", "hardware.device.c2c_sigma=[0.1, no]"], 2, "boolean")


@case("types")
def level_value_beyond_float32(user):
    return Case(["run", workload(user), "--set", "model.level_values=[-1, 0, 1.0e39]"], 2, "float32")


@case("types")
def level_value_flushes_to_zero(user):
    return Case(["run", workload(user), "--set", "model.level_values=[-1, 1.0e-50, 1]"], 2, "float32")


@case("types")
def level_values_equal_in_float32(user):
    return Case(["run", workload(user), "--set", "model.levels=4", "--set",
                 "model.level_values=[-1, 0, 1, 1.00000001]"], 2, "float32")


@case("types")
def init_width_beyond_float32(user):
    return Case(["run", workload(user), "--set", "model.init_width=1e39"], 2, "float32")


@case("types")
def relaxation_sigma_beyond_float32(user):
    return Case(["run", workload(user), "--hw", "hfo2-device", "--set", "hardware.device.relaxation_sigma=1.0e40"], 2, "float32")


@case("types")
def sweep_grid_of_booleans(user):
    return Case(["sweep", sweep(user, grid={"learning.m_star": [True, False]}), "--dry-run"], 2, "boolean")


@case("types")
def sweep_random_bound_beyond_float32(user):
    random = {"samples": 2, "space": {"learning.m_star": {"uniform": [0, 1.0e39]}}}
    return Case(["sweep", sweep(user, grid={}, random=random), "--dry-run"], 2, "float32")


def _modes(expect_file: int, expect_dir: int):
    def check(user, result, stdout, stderr):
        run = user / "r"
        assert stat.S_IMODE(run.stat().st_mode) == expect_dir
        for path in run.iterdir():
            assert stat.S_IMODE(path.stat().st_mode) == expect_file, path
    return check


@case("types")
def result_files_respect_umask_027(user):
    return Case(["run", workload(user), "--out", "r", "--quiet"], 0, umask=0o027, new_ok=("r",),
                check=_modes(0o640, 0o750))


@case("types")
def result_files_respect_umask_002(user):
    return Case(["run", workload(user), "--out", "r", "--quiet"], 0, umask=0o002, new_ok=("r",),
                check=_modes(0o664, 0o775))


# == kind: late faults (after training) ===========================================================
def _nulls_and_warning(user, result, stdout, stderr):
    summary = json.loads((user / "r" / "summary.json").read_text())
    assert summary["writes"]["mean_per_device"] is None and summary["train_loss"]["mnist"][0] is None
    assert "writes.mean_per_device" in summary["warnings"][0]
    warnings = [line for line in stderr.splitlines() if line.strip()]
    assert len(warnings) == 1 and warnings[0].startswith("archsim: warning: ") and "writes.mean_per_device" in warnings[0]


@case("late")
def nonfinite_values_recorded_as_null(user):
    return Case(["run", workload(user), "--out", "r", "--quiet"], 0, fault="nonfinite", new_ok=("r",),
                check=_nulls_and_warning)


def _incomplete(folder: str, reason: str):
    def check(user, result, stdout, stderr):
        kept = user / folder
        learned = json.loads((kept / "accuracy.json").read_text())
        assert 0 <= learned["accuracy"]["after:mnist"]["mnist"] <= 1
        assert reason in (kept / "incomplete.txt").read_text()
        assert (kept / "config.yaml").is_file()
        assert str(kept.name) in stderr
    return check


@case("late")
def disk_full_writing_summary(user):
    return Case(["run", workload(user), "--out", "r", "--quiet"], 4, "r.incomplete", fault="enospc_summary",
                new_ok=("r.incomplete",), check=_incomplete("r.incomplete", "No space left"))


def _printed_matrix(user, result, stdout, stderr):
    assert "after:mnist" in stdout and "printed above" in stderr
    assert not (user / "r").exists()


@case("late")
def disk_full_everywhere(user):
    return Case(["run", workload(user), "--out", "r", "--quiet"], 4, "No space left", fault="enospc_everywhere",
                check=_printed_matrix)


def _old_run_intact(user, result, stdout, stderr):
    assert json.loads((user / "earlier" / "summary.json").read_text()) == EARLIER_SUMMARY
    _incomplete("earlier.incomplete", "Read-only")(user, result, stdout, stderr)


@case("late")
def read_only_at_rename_keeps_old_run(user):
    marked_run(user / "earlier")
    return Case(["run", workload(user), "--out", "earlier", "--force", "--quiet"], 4, "Read-only",
                fault="readonly_at_rename", new_ok=("earlier.incomplete",), check=_old_run_intact)


def _user_file_survives(user, result, stdout, stderr):
    assert (user / "earlier" / "added-while-training.txt").read_text() == "mine\n"
    assert json.loads((user / "earlier" / "summary.json").read_text()) == EARLIER_SUMMARY
    _incomplete("earlier.incomplete", "did not write")(user, result, stdout, stderr)


@case("late")
def user_adds_file_during_training(user):
    marked_run(user / "earlier")
    return Case(["run", workload(user), "--out", "earlier", "--force", "--quiet"], 4, "added-while-training.txt",
                fault="user_file_during_training", new_ok=("earlier",), check=_user_file_survives)


@case("late")
def bug_in_summary_after_training(user):
    return Case(["run", workload(user), "--out", "r", "--quiet"], 1, "injected bug", fault="summary_bug",
                new_ok=("r.incomplete",), check=_incomplete("r.incomplete", "injected bug"))


def _two_incompletes(user, result, stdout, stderr):
    assert (user / "r.incomplete" / "mine.txt").read_text() == "earlier\n"
    made = [p for p in user.iterdir() if p.name.endswith(".incomplete") and p.name != "r.incomplete"]
    assert len(made) == 1 and (made[0] / "accuracy.json").is_file()


@case("late")
def incomplete_never_overwrites_an_earlier_one(user):
    (user / "r.incomplete").mkdir()
    (user / "r.incomplete" / "mine.txt").write_text("earlier\n")
    return Case(["run", workload(user), "--out", "r", "--quiet"], 4, "No space left", fault="enospc_summary",
                new_ok=("r.",), check=_two_incompletes)


def _saved_despite_trace(user, result, stdout, stderr):
    assert (user / "r" / "summary.json").is_file()
    assert not (user / "t.json").exists()


@case("late")
def trace_disk_full_after_results_saved(user):
    return Case(["run", workload(user), "--hw", "paper-130nm", "--out", "r", "--trace", "t.json", "--quiet"], 4,
                "results are saved", fault="trace_enospc", new_ok=("r",), check=_saved_despite_trace)


def _trace_inside(user, result, stdout, stderr):
    assert json.loads((user / "r" / "trace.json").read_text())["traceEvents"]
    marker = json.loads((user / "r" / ".archsim-run").read_text())
    assert marker["files"] == ["trace.json"]


@case("late")
def trace_inside_run_folder_is_part_of_it(user):
    return Case(["run", workload(user), "--hw", "paper-130nm", "--out", "r", "--trace", "r/trace.json", "--quiet"], 0,
                new_ok=("r",), check=_trace_inside)


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile(server, tmp_path, name):
    run_case(server, tmp_path, CASES[name][1])


def test_corpus_covers_every_kind():
    kinds = {}
    for kind, _ in CASES.values():
        kinds[kind] = kinds.get(kind, 0) + 1
    assert set(kinds) == {"destroy", "names", "paths", "memory", "reading", "types", "late"}, kinds
    assert sum(kinds.values()) >= 60


# == end to end: a fresh interpreter per command ==================================================
def limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def archsim(*args: str, cwd: Path, env: dict | None = None, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "archsim.cli", *args], cwd=cwd, preexec_fn=limited,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), **(env or {})}, **kwargs)


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr and len(lines) == 1 and lines[0].startswith("archsim: error: "), stderr
    return lines[0]


def test_e2e_out_dot_force_keeps_the_users_file(tmp_path):
    (tmp_path / "thesis.tex").write_text("mine\n")
    proc = archsim("run", workload(tmp_path), "--out", ".", "--force", cwd=tmp_path)
    _, stderr = proc.communicate(timeout=CASE_TIMEOUT_S)
    assert proc.returncode == 4
    assert "current folder" in one_error_line(stderr)
    assert (tmp_path / "thesis.tex").read_text() == "mine\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["thesis.tex", "w.yaml"]


def test_e2e_billion_hidden_units_fail_fast_under_the_memory_limit(tmp_path):
    start = time.monotonic()
    proc = archsim("run", workload(tmp_path, **{"model__hidden": [1_000_000_000]}), cwd=tmp_path)
    _, stderr = proc.communicate(timeout=CASE_TIMEOUT_S)
    assert proc.returncode == 2 and "needs about" in one_error_line(stderr)
    assert time.monotonic() - start < CASE_TIMEOUT_S


def test_e2e_second_run_on_the_same_out_fails_at_once(tmp_path, server):
    slow = workload(tmp_path, "slow.yaml", **{"tasks": [{"name": "mnist", "dataset": "mnist", "epochs": 3,
                                                        "train_limit": 4000, "test_limit": 500}],
                                              "model__hidden": [256]})
    first = archsim("run", slow, "--out", "r", "--quiet", cwd=tmp_path)
    lock = tmp_path / ".r.lock"
    deadline = time.monotonic() + CASE_TIMEOUT_S
    while not lock.exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert lock.exists(), first.communicate()
    second = server.run({"argv": ["run", slow, "--out", "r", "--force"],
                         "cwd": str(tmp_path), "stdout": str(tmp_path / "o2"), "stderr": str(tmp_path / "e2"),
                         "timeout": CASE_TIMEOUT_S})
    still_running = first.poll() is None
    _, first_err = first.communicate(timeout=120)
    assert still_running, "the first run ended before the second was tried; make it longer"
    assert second["code"] == 4 and second["seconds"] < 10, second
    assert "another archsim process" in one_error_line((tmp_path / "e2").read_text())
    assert first.returncode == 0, first_err
    assert (tmp_path / "r" / "summary.json").is_file() and not lock.exists()


def test_e2e_sigint_while_planning_a_big_sweep(tmp_path):
    spec = sweep(tmp_path, grid=GRID_AT_CAP)
    proc = archsim("sweep", spec, "--dry-run", cwd=tmp_path)
    # pyarrow is imported by the sweep command right before planning starts.
    deadline = time.monotonic() + CASE_TIMEOUT_S
    while "pyarrow" not in Path(f"/proc/{proc.pid}/maps").read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)
    assert proc.poll() is None, proc.communicate()
    sent = time.monotonic()
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=CASE_TIMEOUT_S)
    assert time.monotonic() - sent < 10
    assert proc.returncode == 130 and "SIGINT" in one_error_line(stderr)
    assert not (tmp_path / "sweeps-out").exists()
