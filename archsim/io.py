"""Atomic result files: write to a temporary sibling, fsync, then rename over the target.

A reader therefore sees either the complete previous file, the complete new one, or none;
never a half-written file, whatever signal stops the writer.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np


def _atomic_write(path: Path, mode: str, writer: Callable[[IO[Any]], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as handle:
            writer(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    _atomic_write(Path(path), "w", lambda h: h.write(text))


def atomic_write_bytes(path: Path, data: bytes) -> None:
    _atomic_write(Path(path), "wb", lambda h: h.write(data))


def atomic_write_json(path: Path, data: Any) -> None:
    """Stable, byte-reproducible JSON (sorted keys, fixed indentation, trailing newline)."""
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n")


def atomic_write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    _atomic_write(Path(path), "wb", lambda h: np.savez_compressed(h, **arrays))


@contextmanager
def staged_directory(final: Path) -> Iterator[Path]:
    """Yield a hidden staging folder that is renamed to ``final`` only if the block succeeds.

    A run interrupted before the rename leaves no ``final`` folder at all; the staging
    folder is removed on any exception (a SIGKILL can leave it, but it is hidden and never
    read as a result).
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
    try:
        yield staging
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
