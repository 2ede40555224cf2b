"""Atomic result files: write to a temporary sibling, fsync, then rename over the target.

A reader therefore sees either the complete previous file, the complete new one, or none;
never a half-written file, whatever signal stops the writer. Files and folders get the
permissions the umask gives (``mkstemp``'s 0600 and ``mkdtemp``'s 0700 are widened to it).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import numpy as np

from archsim.errors import DataError
from archsim.limits import MAX_JSON_BYTES, MAX_NESTING_DEPTH


def current_umask() -> int:
    """The process umask, read without changing it (Linux), else by setting and restoring it."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _atomic_write(path: Path, mode: str, writer: Callable[[IO[Any]], None]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
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


NPZ_COMPRESSLEVEL = 1
"""zlib level of ``devices.npz``. Level 1 writes the paper network's device arrays 2.6x
faster than ``np.savez_compressed``'s default 6 (3.1 against 7.9 s of CPU for 12 arrays of
3.2 M devices) for a 6 % larger file (61 against 57 MB): conductances barely compress at
any level. Measured in docs/performance.md."""


def write_npz(handle: IO[bytes], arrays: dict[str, np.ndarray], level: int = NPZ_COMPRESSLEVEL) -> None:
    """``np.savez_compressed`` at a chosen zlib level; ``np.load`` reads it as any ``.npz``."""
    with zipfile.ZipFile(handle, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=level,
                         allowZip64=True) as archive:
        for name, array in arrays.items():
            with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)


def atomic_write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    _atomic_write(Path(path), "wb", lambda h: write_npz(h, arrays))


@contextmanager
def staged_directory(final: Path) -> Iterator[Path]:
    """Yield a hidden staging folder that is renamed to ``final`` only if the block succeeds.

    A run interrupted before the rename leaves no ``final`` folder at all; the staging
    folder is removed on any exception (a SIGKILL can leave it, but it is hidden and never
    read as a result). An existing ``final`` (the caller checked it may be replaced) is first
    renamed aside and deleted only once the new folder is in place, so a failing rename
    leaves the old results where they were.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".partial", dir=final.parent))
    try:
        os.chmod(staging, 0o777 & ~current_umask())
        yield staging
        replace_directory(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def replace_directory(new: Path, final: Path) -> None:
    """Rename ``new`` to ``final``; an existing non-empty ``final`` is moved aside first and
    removed after, or moved back if the rename fails. Never the current folder, one of its
    parents, the home folder or ``/`` (OutputError), whatever the caller checked."""
    from archsim.output import check_not_protected

    check_not_protected(Path(os.path.abspath(final)).resolve(), f"output {final}")
    try:
        os.replace(new, final)  # also replaces an empty folder
        return
    except OSError as exc:
        if exc.errno not in (errno.ENOTEMPTY, errno.EEXIST) or not final.is_dir():
            raise
    aside = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".old", dir=final.parent))
    os.replace(final, aside / "old")
    try:
        os.replace(new, final)
    except BaseException:
        os.replace(aside / "old", final)
        shutil.rmtree(aside, ignore_errors=True)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def json_depth(text: str) -> int:
    """Deepest nesting of brackets in JSON ``text``, strings skipped (linear, no recursion)."""
    import re

    bare = re.sub(r'"(?:[^"\\]|\\.)*"', "", text)
    steps = np.frombuffer(re.sub(r"[^\[\]{}]", "", bare).encode("ascii"), dtype=np.uint8)
    if steps.size == 0:
        return 0
    opens = (steps == ord("[")) | (steps == ord("{"))
    return int(np.cumsum(np.where(opens, 1, -1)).max())


def read_json(path: Path) -> Any:
    """Parse a JSON file with bounds on its size and nesting (DataError beyond them);
    ``json.JSONDecodeError`` and ``OSError``/``UnicodeDecodeError`` pass through."""
    path = Path(path)
    with open(path, "rb") as handle:
        raw = handle.read(MAX_JSON_BYTES + 1)
    if len(raw) > MAX_JSON_BYTES:
        raise DataError(f"{path}: larger than {MAX_JSON_BYTES // 2**20} MiB; not a result file archsim wrote")
    text = raw.decode("utf-8")
    if json_depth(text) > MAX_NESTING_DEPTH:
        raise DataError(f"{path}: nested deeper than {MAX_NESTING_DEPTH} levels; not a result file archsim wrote")
    return json.loads(text)
