"""Shared pieces of the run and sweep reports: the Markdown document, number formats and the
output folder (staged, so a failed report leaves no half folder).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from archsim.errors import OutputError
from archsim.io import atomic_write_text, staged_directory

FORMATS = {"png": ("png",), "svg": ("svg",), "both": ("png", "svg")}
REPORT_FILE = "report.md"

_PREFIXES = [(1e-15, "f"), (1e-12, "p"), (1e-9, "n"), (1e-6, "µ"), (1e-3, "m"), (1.0, ""),
             (1e3, "k"), (1e6, "M"), (1e9, "G")]


def eng(value: Any, unit: str = "", digits: int = 4) -> str:
    """``0.00153 s`` -> ``1.53 ms``: engineering prefixes, ``digits`` significant digits."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(x):
        return f"{x} {unit}".strip()
    if x == 0:
        return f"0 {unit}".strip()
    scale, prefix = _PREFIXES[0]
    for s, p in _PREFIXES:
        if abs(x) >= s * 0.9995:
            scale, prefix = s, p
    return f"{x / scale:.{digits}g} {prefix}{unit}".strip()


def num(value: Any, digits: int = 4) -> str:
    """A plain number: integers with thousands separators, floats to ``digits`` significant."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,d}"
    try:
        x = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isfinite(x) and x == int(x) and abs(x) < 1e15:
        return f"{int(x):,d}"
    if math.isfinite(x) and 1e3 <= abs(x) < 1e15:
        return f"{x:,.2f}"
    return f"{x:.{digits}g}"


def pct(fraction: Any) -> str:
    try:
        x = float(fraction)
    except (TypeError, ValueError):
        return "–"
    return "–" if not math.isfinite(x) else f"{100 * x:.2f}"


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


class Document:
    """A Markdown report being built; figures are written next to it by :meth:`figure`."""

    def __init__(self, folder: Path, formats: Sequence[str]):
        self.folder = Path(folder)
        self.formats = tuple(formats)
        self.lines: list[str] = []
        self.files: list[str] = []

    def heading(self, level: int, text: str) -> None:
        self.lines += ["#" * level + " " + text, ""]

    def para(self, text: str) -> None:
        self.lines += [text, ""]

    def skip(self, text: str) -> None:
        """The one-line note of a section whose data is absent."""
        self.lines += [f"*Skipped: {text}*", ""]

    def bullets(self, items: Sequence[str]) -> None:
        self.lines += [f"- {item}" for item in items] + [""]

    def table(self, headers: Sequence[str], rows: Sequence[Sequence[Any]],
              align: Sequence[str] | None = None) -> None:
        align = align or ["l"] + ["r"] * (len(headers) - 1)
        marks = {"l": ":---", "r": "---:", "c": ":---:"}
        self.lines.append("| " + " | ".join(_cell(h) for h in headers) + " |")
        self.lines.append("|" + "|".join(marks[a] for a in align) + "|")
        for row in rows:
            self.lines.append("| " + " | ".join(_cell(c) for c in row) + " |")
        self.lines.append("")

    def figure(self, fig: Any, stem: str, caption: str) -> None:
        """Save ``fig`` in every requested format, embed the first, close it."""
        from archsim.report.plots import save_figure

        names = save_figure(fig, self.folder, stem, self.formats)
        self.embed(names, caption)

    def embed(self, names: Sequence[str], caption: str) -> None:
        self.files += list(names)
        self.lines.append(f"![{caption}]({names[0]})")
        if len(names) > 1:
            self.lines.append("")
            self.lines.append("Also: " + ", ".join(f"[{n}]({n})" for n in names[1:]))
        self.lines += ["", f"*{caption}*", ""]

    def text(self) -> str:
        return "\n".join(self.lines).rstrip() + "\n"

    def write(self) -> Path:
        path = self.folder / REPORT_FILE
        atomic_write_text(path, self.text())
        return path


def parse_formats(fmt: str) -> tuple[str, ...]:
    from archsim.errors import ConfigError

    key = str(fmt).strip().lower()
    if key not in FORMATS:
        raise ConfigError(f"--format {fmt!r}: must be png, svg or both")
    return FORMATS[key]


def check_output(out: Path, source: Path) -> None:
    """Refuse an output folder whose replacement would delete anything but an earlier report."""
    out_abs = Path(os.path.abspath(out))
    src_abs = Path(os.path.abspath(source))
    if out_abs == src_abs or out_abs in src_abs.parents:
        raise OutputError(f"--out {out}: would replace the results folder {source}; choose another folder")
    if out.exists() and not out.is_dir():
        raise OutputError(f"--out {out}: exists and is not a folder; choose another path")
    if out.is_dir() and any(out.iterdir()) and not (out / REPORT_FILE).is_file():
        raise OutputError(
            f"--out {out}: folder holds other files (no earlier {REPORT_FILE}); choose an empty or new folder"
        )
    foreign = sorted(p.name for p in out.iterdir() if p.name != REPORT_FILE and p.suffix not in (".png", ".svg")
                     and not p.name.startswith(".")) if out.is_dir() else []
    if foreign:  # replacing the folder would delete them
        raise OutputError(
            f"--out {out}: holds files a report does not write ({', '.join(foreign[:3])}); move them or choose another folder"
        )


@contextmanager
def staged_output(out: Path, source: Path) -> Iterator[Path]:
    """Staging folder renamed to ``out`` at the end; OSErrors become one-line OutputErrors."""
    check_output(out, source)
    try:
        with staged_directory(out) as staging:
            yield staging
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        where = exc.filename or out
        raise OutputError(f"--out {out}: cannot write ({reason}: {where}); choose a writable folder") from None
