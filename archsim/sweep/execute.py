"""Run a sweep: validate every point, skip the finished ones, run the rest on Dask.

Points run as Dask tasks (``client.submit(run_point, ..., pure=False)``) on a LocalCluster
sized to the machine, on an existing scheduler (``--scheduler tcp://host:port``), or
in-process without Dask (``--serial`` / ``--workers 0``). Results come back to this process
(``as_completed``), which writes each point's Parquet file atomically: a worker that dies
never leaves a half-written file.
"""

from __future__ import annotations

import logging
import os
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from archsim.errors import (
    ArchsimError,
    ConfigError,
    InterruptedRun,
    OutputError,
    PointsFailed,
    SchedulerError,
)
from archsim.sweep.points import Point, expand
from archsim.sweep.spec import SweepSpec, default_output, load_spec, resolve_input
from archsim.sweep.store import PointStore

CONNECT_TIMEOUT_S = 10.0
BLAS_ENV = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
MAX_ERROR_CHARS = 500


@dataclass
class SweepReport:
    """What a sweep (or --collect) did."""

    output: Path
    total: int
    skipped: int = 0
    ran: int = 0
    ok: int = 0
    failed: int = 0
    duplicates: int = 0
    other_files: int = 0
    wall_time_s: float = 0.0
    failures: list[tuple[Point, str]] = field(default_factory=list)

    @property
    def results(self) -> Path:
        return self.output / "results.parquet"


# -- one point (runs on a worker) -----------------------------------------------------------
def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or "(no message)"
    line = f"{type(exc).__name__}: {text}"
    return line if len(line) <= MAX_ERROR_CHARS else line[: MAX_ERROR_CHARS - 3] + "..."


def run_point(config: dict[str, Any]) -> dict[str, Any]:
    """Validate and run one resolved configuration; never raises for a failing point."""
    start = time.perf_counter()
    try:
        from archsim.config import RunConfig
        from archsim.runner import execute

        # execute() returns (summary, result, ...); only the summary is stored, flattened
        # through the typed model (RunSummary.flat), so columns follow its field names.
        summary = execute(RunConfig.model_validate(config), show_progress=False)[0]
        from archsim.provenance import code_commit

        return {"status": "ok", "error": "", "wall_time_s": time.perf_counter() - start,
                "metrics": {**summary.flat(), "code_commit": code_commit()}}
    except InterruptedRun:  # SIGTERM of a serial sweep stops the sweep, not just the point
        raise
    except Exception as exc:  # recorded, the sweep goes on
        return {"status": "error", "error": one_line(exc), "wall_time_s": time.perf_counter() - start,
                "metrics": {}, "traceback": traceback.format_exc(limit=20)}


# -- planning -------------------------------------------------------------------------------
@dataclass
class Plan:
    spec: SweepSpec
    spec_path: Path
    points: list[Point]
    duplicates: int
    store: PointStore


def plan(spec_path: str | Path, out: Path | None = None) -> Plan:
    """Load the spec and validate every point (ConfigError before anything runs)."""
    from archsim.output import check_sweep_target

    spec_path = Path(spec_path)
    spec = load_spec(spec_path)
    output = Path(out) if out is not None else default_output(spec)
    check_sweep_target(output, f"output {output}")  # before the (long) validation of points
    points, duplicates = expand(spec, spec_path)
    return Plan(spec, spec_path, points, duplicates, PointStore(output))


def resolved_spec_yaml(p: Plan) -> str:
    """The spec as run: inputs and output as absolute paths, so it runs from anywhere."""
    data = p.spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    data["workload"] = str(resolve_input(p.spec.workload, p.spec_path.parent, "workloads"))
    if p.spec.hardware is not None:
        data["hardware"] = str(resolve_input(p.spec.hardware, p.spec_path.parent, "hwconfigs"))
    data["output"] = str(p.store.output.resolve())
    header = f"# Sweep '{p.spec.name}' as run from {p.spec_path.resolve()}; {len(p.points)} points.\n"
    return header + yaml.safe_dump(data, sort_keys=False)


# -- executors ------------------------------------------------------------------------------
Record = Callable[[Point, dict[str, Any]], None]


def run_serial(points: list[Point], record: Record) -> None:
    for point in points:
        record(point, run_point(point.config))


def connect(scheduler: str | None, workers: int, n_points: int, timeout: float = CONNECT_TIMEOUT_S):
    """A Client on the given scheduler or on a new LocalCluster; returns (client, cluster)."""
    from distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            return Client(scheduler, timeout=timeout), None
        except Exception as exc:  # OSError / TimeoutError / ValueError for a bad address
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise SchedulerError(
                f"--scheduler {scheduler}: cannot connect ({reason}); check the address "
                "(tcp://host:port) and that the scheduler is running"
            ) from None
    n_workers = max(1, min(workers, n_points))
    # One BLAS thread per worker process, so n workers do not oversubscribe n cores.
    env = dict(BLAS_ENV) if n_workers > 1 else None
    cluster = LocalCluster(
        n_workers=n_workers,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        silence_logs=logging.ERROR,
        env=env,
    )
    try:
        client = Client(cluster, timeout=CONNECT_TIMEOUT_S)
    except BaseException:
        cluster.close()
        raise
    return client, cluster


def run_dask(points: list[Point], record: Record, client) -> None:
    from distributed import as_completed

    futures = {}
    for point in points:
        futures[client.submit(run_point, point.config, pure=False)] = point
    try:
        for future in as_completed(futures):
            point = futures.pop(future)
            try:
                outcome = future.result()
            except InterruptedRun:  # SIGTERM of this process while waiting
                raise
            except Exception as exc:  # the task itself died (e.g. KilledWorker)
                outcome = {"status": "error", "error": one_line(exc), "wall_time_s": 0.0, "metrics": {}}
            record(point, outcome)
    finally:
        if futures:
            client.cancel(list(futures))


# -- the sweep ------------------------------------------------------------------------------
def run_sweep(
    spec_path: str | Path,
    out: Path | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    serial: bool = False,
    quiet: bool = True,
    echo: Callable[[str], None] = lambda line: None,
    connect_timeout: float = CONNECT_TIMEOUT_S,
) -> SweepReport:
    """Run every point of the sweep not already finished; write results.parquet.

    The output folder is locked for the whole sweep: a second sweep on it fails at once."""
    from archsim.output import output_lock

    start = time.perf_counter()
    p = plan(spec_path, out)
    with output_lock(p.store.output.resolve(), f"output {p.store.output}"):
        return run_plan(p, start, workers, scheduler, serial, quiet, echo, connect_timeout)


def run_plan(p: Plan, start: float, workers: int | None, scheduler: str | None, serial: bool,
             quiet: bool, echo: Callable[[str], None], connect_timeout: float) -> SweepReport:
    from archsim.output import write_marker

    store = p.store
    store.prepare()
    write_marker(store.output, "sweep")
    store.write_spec(resolved_spec_yaml(p))
    finished = store.finished(p.points)
    todo = [pt for pt in p.points if pt.id not in finished]
    report = SweepReport(output=store.output, total=len(p.points), skipped=len(finished),
                         duplicates=p.duplicates)
    if workers is None:
        workers = os.cpu_count() or 1
    use_dask = bool(todo) and not serial and (workers > 0 or scheduler is not None)

    header = f"sweep {p.spec.name}: {len(p.points)} points"
    if p.duplicates:
        header += f" ({p.duplicates} duplicate configuration(s) run once)"
    echo(header)
    if finished:
        echo(f"skipped {len(finished)} finished points")

    from tqdm import tqdm

    bars: list[tqdm] = []

    def record(point: Point, outcome: dict[str, Any]) -> None:
        try:
            store.write_point(point, outcome)
        except OSError as exc:
            raise OutputError(
                f"cannot write {store.point_path(point.id)} ({exc.strerror or exc}); the points "
                "finished so far are kept; free space or fix permissions and run again to resume"
            ) from None
        report.ran += 1
        if outcome["status"] == "ok":
            report.ok += 1
        else:
            report.failed += 1
            report.failures.append((point, outcome.get("error", "")))
        bars[0].set_postfix(failed=report.failed, refresh=False)
        bars[0].update(1)

    def new_bar() -> None:  # only once the points start, so a failed connect prints no bar
        bars.append(tqdm(total=len(todo), unit="pt", disable=quiet, dynamic_ncols=True))

    try:
        if todo and use_dask:
            client, cluster = connect(scheduler, workers, len(todo), connect_timeout)
            if cluster is None:
                n_workers = len(client.scheduler_info().get("workers", {}))
                where = f"scheduler {scheduler} ({n_workers} worker(s) now)"
                if n_workers == 0:
                    where += "; waiting for workers to join"
            else:
                where = f"{len(cluster.workers)} local Dask worker(s)"
            echo(f"running {len(todo)} points on {where}")
            try:
                new_bar()
                run_dask(todo, record, client)
            finally:
                client.close()
                if cluster is not None:
                    cluster.close()
        elif todo:
            echo(f"running {len(todo)} points in this process (serial)")
            new_bar()
            run_serial(todo, record)
    except (KeyboardInterrupt, InterruptedRun):
        raise InterruptedRun(
            f"sweep stopped after {report.ran} of {len(todo)} points; every finished point is kept "
            f"in {store.points_dir}; run the same command again to resume"
        ) from None
    finally:
        for bar in bars:
            bar.close()

    _, report.other_files = store.collect(p.points, p.spec.swept_keys)
    report.ok += report.skipped
    report.wall_time_s = time.perf_counter() - start
    return report


def collect_only(spec_path: str | Path, out: Path | None = None) -> tuple[SweepReport, dict[str, int]]:
    """Rewrite results.parquet (and sweep.yaml) from the stored points; runs nothing."""
    p = plan(spec_path, out)
    if not p.store.points_dir.is_dir():
        raise ConfigError(f"output {p.store.output}: no points/ folder; run the sweep first")
    p.store.prepare()
    from archsim.output import write_marker

    write_marker(p.store.output, "sweep")
    p.store.write_spec(resolved_spec_yaml(p))
    frame, others = p.store.collect(p.points, p.spec.swept_keys)
    counts = frame["status"].value_counts().to_dict() if len(frame) else {}
    report = SweepReport(output=p.store.output, total=len(p.points), ok=int(counts.get("ok", 0)),
                         failed=int(counts.get("error", 0)), duplicates=p.duplicates, other_files=others)
    return report, {"missing": len(p.points) - len(frame)}


def sweep_command(
    spec_path: Path,
    out: Path | None,
    workers: int | None,
    scheduler: str | None,
    serial: bool,
    collect: bool,
    dry_run: bool,
    quiet: bool,
    echo: Callable[[str], None],
    connect_timeout: float = CONNECT_TIMEOUT_S,
) -> None:
    """The CLI's ``archsim sweep``; raises PointsFailed (exit 6) if any point failed."""
    if scheduler is not None and (serial or workers is not None):
        raise ConfigError("--scheduler runs on that cluster's workers; drop --serial / --workers")
    if dry_run:
        p = plan(spec_path, out)
        finished = p.store.finished(p.points) if p.store.points_dir.is_dir() else set()
        echo(f"sweep {p.spec.name}: {len(p.points)} valid points, {len(finished)} already finished, "
             f"{len(p.points) - len(finished)} to run; output {p.store.output}")
        return
    if collect:
        report, extra = collect_only(spec_path, out)
        echo(f"collected {report.ok + report.failed} of {report.total} points "
             f"({report.ok} ok, {report.failed} failed, {extra['missing']} not run yet)")
        _echo_others(report, echo)
        echo(f"results: {report.results}")
        return
    report = run_sweep(spec_path, out, workers=0 if serial else workers, scheduler=scheduler,
                       serial=serial, quiet=quiet, echo=echo, connect_timeout=connect_timeout)
    echo(f"done in {report.wall_time_s:.1f} s: ran {report.ran}, {report.ok} of {report.total} points ok, "
         f"{report.failed} failed")
    _echo_others(report, echo)
    echo(f"results: {report.results}")
    if report.failed:
        point, error = report.failures[0]
        raise PointsFailed(
            f"{report.failed} of {report.total} points failed (first: {point.label()}: {error}); "
            f"see the status/error columns of {report.results}; run again to retry them"
        )


def _echo_others(report: SweepReport, echo: Callable[[str], None]) -> None:
    if report.other_files:
        echo(f"note: {report.other_files} point file(s) in {report.output / 'points'} belong to no "
             "point of this spec (kept, not in results.parquet)")
