"""Result storage of a sweep: one Parquet file per finished point, written atomically.

Layout of the output folder::

    OUTPUT/sweep.yaml            the spec as run (workload/hardware/output made absolute)
    OUTPUT/points/<id>.parquet   one row per finished point (status ok or error)
    OUTPUT/results.parquet       the points of the spec, concatenated (rewritten after a run)
    OUTPUT/results.csv           the same table as CSV (without the config_json column)

A point file is written to a hidden temporary file in ``points/``, fsynced and renamed, so it
is complete or absent whatever kills the sweep. Point files are never deleted; an ``error``
file is replaced when the point is run again.
"""

from __future__ import annotations

import io
import json
import math
import os
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from archsim.errors import OutputError
from archsim.io import atomic_write_bytes, atomic_write_text
from archsim.sweep.points import Point, canonical_json

META_COLUMNS = ["point_id", "status", "error", "wall_time_s", "finished_at"]
CONFIG_COLUMN = "config_json"


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dict -> ``{"a.b.c": scalar}``; lists and other non-scalars become JSON strings."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{name}."))
        elif value is None or isinstance(value, (bool, int, str)):
            flat[name] = value
        elif isinstance(value, float):
            flat[name] = value if math.isfinite(value) else None
        elif hasattr(value, "item") and getattr(value, "ndim", None) == 0:  # numpy scalar
            flat[name] = value.item()
        else:
            flat[name] = json.dumps(_jsonable(value), allow_nan=False, default=str)
    return flat


def _jsonable(value: Any) -> Any:
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def column_value(value: Any) -> Any:
    """Swept values as one Parquet cell: scalars as they are, lists/dicts as JSON."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return json.dumps(value, sort_keys=True)


def point_row(point: Point, outcome: Mapping[str, Any]) -> dict[str, Any]:
    """The one row of a point file."""
    row: dict[str, Any] = {
        "point_id": point.id,
        "status": outcome["status"],
        "error": outcome.get("error", ""),
        "wall_time_s": float(outcome.get("wall_time_s", 0.0)),
        "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    for key, value in point.swept.items():
        row[key] = column_value(value)
    row[CONFIG_COLUMN] = canonical_json(point.config)
    for key, value in (outcome.get("metrics") or {}).items():
        row[f"summary.{key}" if key in row else key] = value
    return row


def table_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def frame_to_table(frame: pd.DataFrame) -> pa.Table:
    """Arrow table of a frame; a column of mixed types is stored as JSON text instead."""
    try:
        return pa.Table.from_pandas(frame, preserve_index=False)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        fixed = frame.copy()
        for column in fixed.columns:
            try:
                pa.array(fixed[column], from_pandas=True)
            except (pa.ArrowInvalid, pa.ArrowTypeError):
                fixed[column] = [
                    None if _is_missing(v) else (v if isinstance(v, str) else json.dumps(v, default=str))
                    for v in fixed[column]
                ]
        return pa.Table.from_pandas(fixed, preserve_index=False)


def _is_missing(value: Any) -> bool:
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


class PointStore:
    """The output folder of one sweep."""

    def __init__(self, output: Path):
        self.output = Path(output)
        self.points_dir = self.output / "points"

    # -- setup -------------------------------------------------------------------------
    def prepare(self) -> None:
        """Create the folders and prove they are writable; OutputError otherwise.

        Run before any point starts; existing files are left untouched.
        """
        out = self.output
        if out.exists() and not out.is_dir():
            raise OutputError(f"output {out}: exists and is not a folder; choose another --out")
        try:
            self.points_dir.mkdir(parents=True, exist_ok=True)
            fd, probe = tempfile.mkstemp(prefix=".write-probe.", suffix=".tmp", dir=self.points_dir)
            os.close(fd)
            os.unlink(probe)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise OutputError(
                f"output {out}: not writable ({reason}); choose a writable folder with --out"
            ) from None

    def write_spec(self, text: str) -> None:
        atomic_write_text(self.output / "sweep.yaml", text)

    # -- points ------------------------------------------------------------------------
    def point_path(self, point_id: str) -> Path:
        return self.points_dir / f"{point_id}.parquet"

    def status(self, point_id: str) -> str | None:
        """'ok' / 'error' of a stored point, None if absent or unreadable."""
        path = self.point_path(point_id)
        if not path.is_file():
            return None
        try:
            statuses = pq.read_table(path, columns=["status"]).column("status").to_pylist()
        except Exception:  # an unreadable file counts as not finished; it is rewritten
            return None
        return statuses[0] if statuses else None

    def finished(self, points: Iterable[Point]) -> set[str]:
        """Ids of the points whose file holds status ok."""
        return {p.id for p in points if self.status(p.id) == "ok"}

    def write_point(self, point: Point, outcome: Mapping[str, Any]) -> dict[str, Any]:
        row = point_row(point, outcome)
        table = frame_to_table(pd.DataFrame([row]))
        atomic_write_bytes(self.point_path(point.id), table_bytes(table))
        return row

    # -- results -----------------------------------------------------------------------
    def collect(self, points: list[Point], swept_keys: list[str]) -> tuple[pd.DataFrame, int]:
        """All stored points of ``points`` (spec order) -> results.parquet, atomically.

        Returns the frame and the number of point files in ``points/`` that belong to no
        point of this spec (kept, not included).
        """
        frames = []
        wanted = {p.id for p in points}
        for point in points:
            path = self.point_path(point.id)
            if not path.is_file():
                continue
            try:
                stored = pq.read_table(path).to_pandas()
            except Exception:
                continue
            # A point file another sweep wrote (same configuration, so same id) carries that
            # sweep's columns: this sweep's swept values come from this sweep's point.
            for key, value in point.swept.items():
                stored[key] = column_value(value)
            frames.append(stored)
        others = sum(
            1 for path in self.points_dir.glob("*.parquet")
            if not path.name.startswith(".") and path.stem not in wanted
        )
        frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=META_COLUMNS)
        first = [c for c in META_COLUMNS + swept_keys + [CONFIG_COLUMN] if c in frame.columns]
        rest = sorted(c for c in frame.columns if c not in first)
        frame = frame[first + rest]
        atomic_write_bytes(self.output / "results.parquet", table_bytes(frame_to_table(frame)))
        # The same table as CSV beside it, for spreadsheets and tools without Parquet.
        atomic_write_text(self.output / "results.csv", frame.drop(columns=[CONFIG_COLUMN], errors="ignore")
                          .to_csv(index=False))
        return frame, others
