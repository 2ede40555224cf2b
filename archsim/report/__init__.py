"""``archsim report``: figures and a Markdown report of a run folder or a sweep folder.

* a run folder holds ``summary.json`` (``archsim run``): :func:`run_report.write_run_report`;
* a sweep folder holds ``results.parquet`` (``archsim sweep``): :func:`sweep_report.write_sweep_report`.

Both write into a hidden staging folder renamed to the output folder at the end, so a failed
report leaves no half folder. See ``docs/reports.md`` and ``archsim/report/README.md``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from archsim.errors import ConfigError

DEFAULT_SUBFOLDER = "report"


def make_report(source: Path | str, out: Path | str | None = None, fmt: str = "png",
                objectives: Sequence[str] | None = None) -> Path:
    """Write the report of ``source`` (run or sweep folder) to ``out`` (default
    ``source/report``); returns the path of ``report.md``. ``objectives`` (sweeps only): what
    to draw against accuracy (:data:`archsim.report.sweep_report.OBJECTIVES`)."""
    from archsim.report.markdown import parse_formats

    source = Path(source)
    formats = parse_formats(fmt)
    if not source.exists():
        raise ConfigError(f"{source}: no such folder; pass a run folder (archsim run --out) or a sweep folder")
    if not source.is_dir():
        raise ConfigError(f"{source}: not a folder; pass a run folder (summary.json) or a sweep folder (results.parquet)")
    out_dir = Path(out) if out is not None else source / DEFAULT_SUBFOLDER
    if (source / "summary.json").is_file():
        if objectives:
            raise ConfigError("--objective applies to sweep folders (results.parquet); drop it for a run folder")
        from archsim.report.run_report import write_run_report

        return write_run_report(source, out_dir, formats)
    if (source / "results.parquet").is_file():
        from archsim.report.sweep_report import write_sweep_report

        return write_sweep_report(source, out_dir, formats, objectives)
    raise ConfigError(
        f"{source}: not a run or sweep folder (no summary.json or results.parquet); "
        "a run still in progress has no summary.json yet"
    )


__all__ = ["make_report"]
