"""Command line: ``archsim run | memory | report | sweep | select | table | validate``.

Every user error ends as one line ``archsim: error: ...`` on stderr and the exit code of its
kind (see README, "Exit codes"); ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from archsim.errors import ArchsimError, IncompleteRun, InterruptedRun, OutputError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    help="archsim: simulate memristive in-memory-computing chips that learn on chip.",
)

DEBUG = {"enabled": False}


def _print_version(value: bool) -> None:
    if value:
        from archsim import __version__

        typer.echo(f"archsim {__version__}")
        raise typer.Exit()


@app.callback()
def _global_options(
    debug: Annotated[bool, typer.Option("--debug", help="Show Python tracebacks on errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", help="Print the version and exit.", callback=_print_version, is_eager=True)
    ] = False,
) -> None:
    DEBUG["enabled"] = debug


def default_out_dir(name: str) -> Path:
    """runs/<name>-<time>, with the name reduced to a safe single path component."""
    from archsim.output import sanitized_name

    return Path("runs") / f"{sanitized_name(name)}-{time.strftime('%Y%m%d-%H%M%S')}"


@app.command()
def run(
    workload: Annotated[str, typer.Argument(help="Workload YAML file, or a shipped workload name.")],
    hw: Annotated[
        Optional[str], typer.Option("--hw", help="Hardware YAML file or shipped preset name.")
    ] = None,
    set_: Annotated[
        Optional[list[str]],
        typer.Option("--set", help="Override a setting: dotted.key=value (repeatable)."),
    ] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Seed of every random draw.")] = None,
    out: Annotated[
        Optional[Path], typer.Option("--out", help="Result folder (default runs/<name>-<time>).")
    ] = None,
    data_dir: Annotated[
        Optional[str], typer.Option("--data-dir", help="Folder holding mnist/ and fashion-mnist/.")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Replace an existing result folder.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
    trace: Annotated[
        Optional[Path],
        typer.Option("--trace", help="With --hw: write a Chrome/Perfetto trace of the first batches."),
    ] = None,
) -> None:
    """Train and evaluate one configuration; write summary.json and config.yaml to --out."""
    from archsim.config import load_run_config
    from archsim.runner import execute_run

    overrides = list(set_ or [])
    if data_dir is not None:
        overrides.append(f"data.data_dir={data_dir}")
    from archsim.limits import check_run_memory
    from archsim.output import check_run_target

    config = load_run_config(workload, hw, overrides, seed)
    out_dir = out if out is not None else default_out_dir(config.name)
    if trace is not None and config.hardware is None:
        raise OutputError("--trace needs a hardware description; add --hw (e.g. --hw paper-130nm)")
    check_run_memory(config)
    check_run_target(out_dir, force, trace)
    try:
        summary = execute_run(config, out_dir, show_progress=not quiet, trace=trace, force=force)
    except IncompleteRun as exc:
        if exc.accuracy:
            print_accuracy({"accuracy": exc.accuracy})
        raise
    for warning in summary.warnings or []:
        typer.echo(f"archsim: warning: {warning}", err=True)
    print_accuracy(summary.to_json_dict())  # the typed summary as plain JSON values
    typer.echo(f"results: {out_dir}")


def print_accuracy(summary: dict) -> None:
    """Accuracy matrix as a small table on stdout (validation when the test set was not scored)."""
    matrix, label = summary["accuracy"], "accuracy (%)"
    if not matrix:
        matrix, label = summary["validation_accuracy"], "validation (%)"
    tasks = list(matrix[list(matrix)[-1]])
    typer.echo(f"{label:<15}" + "  ".join(f"{t:>14}" for t in tasks))
    for after, row in matrix.items():
        cells = "  ".join(
            f"{100 * row[t]:14.2f}" if isinstance(row.get(t), (int, float))
            else f"{'n/a' if t in row else '':>14}"
            for t in tasks
        )
        typer.echo(f"{after:<15}{cells}")
    continual = summary.get("continual") or {}
    scored = "test" if "test" in continual else "validation"
    metrics = continual.get(scored)
    if metrics:
        line = (f"average {'validation ' if scored == 'validation' else ''}accuracy after the "
                f"last task: {100 * metrics['average_accuracy']:.2f} %")
        if metrics.get("backward_transfer") is not None:
            line += (f", backward transfer: {100 * metrics['backward_transfer']:+.2f} points, "
                     f"average forgetting: {100 * metrics['average_forgetting']:.2f} points")
        typer.echo(line)


@app.command()
def memory(
    workload: Annotated[str, typer.Argument(help="Workload YAML file, or a shipped workload name.")],
    hw: Annotated[
        Optional[str], typer.Option("--hw", help="Hardware YAML (sets the hidden-weight precision).")
    ] = None,
    set_: Annotated[
        Optional[list[str]], typer.Option("--set", help="Override a setting: dotted.key=value.")
    ] = None,
) -> None:
    """Print the memory footprint and its saving against the BNN design, with the formula."""
    from archsim.config import load_run_config
    from archsim.metrics.memory import format_memory_table, memory_section

    config = load_run_config(workload, hw, list(set_ or []))
    typer.echo(format_memory_table(config, memory_section(config)))


@app.command()
def select(
    source: Annotated[Path, typer.Argument(
        metavar="SWEEP_DIR|TABLE.csv",
        help="Finished selection sweep folder, or its table from `archsim table selection`.")],
) -> None:
    """Apply the validation-only selection rule (docs/learning-rules.md) to a finished sweep
    (or its committed table) and print every setting's margins and the chosen one."""
    from archsim.metrics.reproduction import csv_selection_text, read_sweep, sweep_selection_text

    if source.suffix.lower() == ".csv":
        typer.echo(csv_selection_text(source))
    else:
        typer.echo(sweep_selection_text(read_sweep(source)))


@app.command()
def table(
    kind: Annotated[str, typer.Argument(help="'seeds' (results/paper-seeds.csv), 'memory' (results/memory-matched.csv), "
                                         "'selection' (results/paper-selection.csv) or 'hidden-bits' "
                                         "(results/hidden-bits.csv).")],
    sweep_dirs: Annotated[list[Path], typer.Argument(metavar="SWEEP_DIR...", help="Finished sweep folders.")],
    out: Annotated[Path, typer.Option("--out", help="CSV file to write.")],
    force: Annotated[bool, typer.Option("--force", help="Replace an existing CSV.")] = False,
) -> None:
    """Turn finished sweeps into a committed results table, one row per run (seeds, selection)
    or per network (memory), each with the archsim run command that reproduces it."""
    from archsim.errors import ConfigError
    from archsim.io import atomic_write_text
    from archsim.metrics import reproduction

    makers = {"seeds": reproduction.seeds_table, "memory": reproduction.memory_table,
              "selection": reproduction.selection_table, "hidden-bits": reproduction.hidden_bits_table}
    if kind not in makers:
        raise ConfigError(f"table {kind!r}: unknown kind; use one of {', '.join(repr(k) for k in makers)}")
    from archsim.output import check_file_target

    check_file_target(out, force, "--out")
    frame = makers[kind](sweep_dirs)
    atomic_write_text(out, frame.to_csv(index=False, float_format="%.2f", lineterminator="\n"))
    if kind == "seeds":
        typer.echo(reproduction.seeds_summary(frame))
    typer.echo(f"{len(frame)} rows: {out}")


@app.command()
def report(
    run_dir: Annotated[
        Path,
        typer.Argument(
            metavar="RUN_DIR", help="Run folder (holds summary.json) or sweep folder (holds results.parquet)."
        ),
    ],
    out: Annotated[
        Optional[Path], typer.Option("--out", help="Report folder (default RUN_DIR/report; replaced if it holds a report).")
    ] = None,
    format_: Annotated[
        str, typer.Option("--format", help="Figure format: png, svg or both.")
    ] = "png",
    objective: Annotated[
        Optional[list[str]],
        typer.Option("--objective", help="Sweeps: what to draw against accuracy (repeatable): inference-energy, "
                     "training-energy, energy, latency, train-latency, run-time, area, writes, max-writes, "
                     "accuracy, or a numeric column of results.parquet."),
    ] = None,
) -> None:
    """Figures and report.md of a run (accuracy, energy, latency, writes, conductances, memory)
    or of a sweep (each objective against accuracy, every swept key shown, seeds as mean ± sd)."""
    from archsim.report import make_report

    path = make_report(run_dir, out, format_, objective)
    typer.echo(f"report: {path}")


@app.command()
def presets() -> None:
    """List the shipped workloads, hardware and device presets, one line each."""
    from archsim.catalog import preset_lines

    for line in preset_lines():
        typer.echo(line)


@app.command()
def schema() -> None:
    """Print the JSON Schema of summary.json (the typed run result, archsim.results.RunSummary)."""
    import json

    from archsim.results import json_schema

    typer.echo(json.dumps(json_schema(), indent=2, sort_keys=True))


@app.command()
def validate(
    designs: Annotated[
        Optional[list[Path]],
        typer.Argument(help="Validation YAMLs (default: every design in hwconfigs/validation/)."),
    ] = None,
) -> None:
    """Rebuild published designs and print published / simulated / ratio per headline figure."""
    from archsim.errors import ConfigError
    from archsim.validate import load_design, predict, shipped_designs
    from archsim.validate.predict import checks_of
    from archsim.validate.table import render

    paths = designs or shipped_designs()
    if not paths:
        raise ConfigError("no validation designs found; give validation YAML files")
    results = []
    for design in (load_design(p) for p in paths):
        prediction = predict(design)
        results.append((design, prediction, checks_of(design, prediction)))
    typer.echo(render(results))
    failed = sum(not c.passed for _, _, checks in results for c in checks)
    if failed:
        raise ArchsimError(
            f"{failed} validated figure(s) outside their tolerance (FAIL rows above); fix the "
            "model or document the deviation in the design's YAML"
        )


def _raise_interrupt(signum: int, frame: object) -> None:
    raise InterruptedRun(
        f"stopped by {signal.Signals(signum).name}; no partial results were kept, run again to redo"
    )


def is_usage_error(exc: BaseException) -> bool:
    return any(cls.__name__ == "ClickException" for cls in type(exc).__mro__)


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point: run the app, turning user errors into one line."""
    # Our own exception rather than KeyboardInterrupt, which typer swallows into exit 130
    # without a message; installing it also undoes a parent's 'ignore SIGINT' (nohup, '&').
    signal.signal(signal.SIGTERM, _raise_interrupt)
    signal.signal(signal.SIGINT, _raise_interrupt)
    debug = "--debug" in (argv if argv is not None else sys.argv[1:])
    try:
        app(args=argv, standalone_mode=False)
    except ArchsimError as exc:
        if debug:
            raise
        typer.echo(f"archsim: error: {exc}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        if debug:
            raise
        typer.echo(
            "archsim: error: interrupted (SIGINT); no partial results were kept, run again to redo",
            err=True,
        )
        return InterruptedRun.exit_code
    except typer.Exit as exc:
        return exc.exit_code
    except typer.Abort:
        typer.echo("archsim: error: aborted", err=True)
        return 1
    except Exception as exc:
        # Usage errors of the click version typer ships (typer may vendor its own click).
        if not is_usage_error(exc) or debug:
            raise
        typer.echo(f"archsim: error: {exc.format_message().rstrip('.')}; see --help", err=True)  # type: ignore[attr-defined]
        return int(getattr(exc, "exit_code", 2))
    return 0


@app.command()
def sweep(
    spec: Annotated[Path, typer.Argument(help="Sweep YAML file (see docs/sweeps.md).")],
    out: Annotated[
        Optional[Path], typer.Option("--out", help="Result folder (default: the spec's output, sweeps-out/<name>).")
    ] = None,
    workers: Annotated[
        Optional[int],
        typer.Option("--workers", min=0, help="Local Dask worker processes (default: CPU count); 0 = serial."),
    ] = None,
    scheduler: Annotated[
        Optional[str], typer.Option("--scheduler", help="Run on an existing Dask scheduler, tcp://host:port.")
    ] = None,
    serial: Annotated[bool, typer.Option("--serial", help="Run in this process, without Dask.")] = False,
    collect: Annotated[
        bool, typer.Option("--collect", help="Only rewrite results.parquet from the finished points.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Validate every point and count what would run; run nothing.")
    ] = False,
    connect_timeout: Annotated[
        float, typer.Option("--connect-timeout", min=0.1, help="Seconds to wait for --scheduler.")
    ] = 10.0,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Run a design-space sweep on Dask; resumable (finished points are skipped).

    Exit code 0 if every point is ok, 6 if some failed (recorded in results.parquet).
    """
    from archsim.sweep.execute import sweep_command

    sweep_command(
        spec, out, workers, scheduler, serial, collect, dry_run, quiet, typer.echo, connect_timeout
    )


if __name__ == "__main__":
    sys.exit(main())
