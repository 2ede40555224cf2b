"""Where results go: checked before any training, claimed with a lock, replaced only if ours.

Rules (README, "Exit codes and errors"; docs/robustness.md):

* every run or sweep folder archsim writes holds a marker file, ``.archsim-run``, a small JSON
  saying what made it; ``--force`` replaces only a folder with that marker (or a run folder
  written before markers existed) that holds nothing but archsim's own files;
* never the current folder, one of its parents, the home folder or ``/``, with or without
  ``--force``;
* the path is resolved (symbolic links followed, loops and dangling links refused) and every
  name archsim derives from it (staging ``.<name>.XXXXXXXX.partial``, ``<name>.incomplete``,
  the lock) must fit the file system's name length;
* a lock file next to the target (``.<name>.lock``, held with ``flock`` from before training
  until the folder is renamed into place) makes a second run on the same target fail at once.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from archsim.errors import OutputError

MARKER = ".archsim-run"
RUN_FILES = frozenset({MARKER, "summary.json", "config.yaml", "devices.npz", "timing.json", "report"})
INCOMPLETE_FILES = frozenset({MARKER, "accuracy.json", "config.yaml", "incomplete.txt"})
SWEEP_FILES = frozenset({MARKER, "sweep.yaml", "results.parquet", "points", "report"})
KIND_FILES = {"run": RUN_FILES, "incomplete": INCOMPLETE_FILES, "sweep": SWEEP_FILES}
LONGEST_SUFFIX = len(".") + len(".XXXXXXXX.partial")  # staging name, the longest we derive
MAX_MARKER_BYTES = 64 * 1024


def write_marker(folder: Path, kind: str, extra_files: tuple[str, ...] = ()) -> None:
    """Mark ``folder`` as made by archsim (``kind``: run, sweep or incomplete)."""
    from archsim import __version__
    from archsim.io import atomic_write_json

    atomic_write_json(folder / MARKER, {"made_by": "archsim", "kind": kind, "version": __version__,
                                        "files": sorted(extra_files)})


def read_marker(folder: Path) -> dict | None:
    """The marker of ``folder``, or None if absent or not archsim's."""
    path = folder / MARKER
    try:
        if not path.is_file() or path.is_symlink():
            return None
        with open(path, "rb") as handle:
            data = json.loads(handle.read(MAX_MARKER_BYTES))
    except (OSError, ValueError, RecursionError):
        return None
    if isinstance(data, dict) and data.get("made_by") == "archsim" and data.get("kind") in KIND_FILES:
        return data
    return None


def folder_kind(folder: Path) -> str | None:
    """run / sweep / incomplete for a folder archsim made (marker, or the layout of a run or
    sweep folder written before markers existed), else None."""
    marker = read_marker(folder)
    if marker is not None:
        return str(marker["kind"])
    if (folder / "summary.json").is_file() and (folder / "config.yaml").is_file():
        return "run"
    spec = folder / "sweep.yaml"
    if (folder / "points").is_dir() and spec.is_file():
        try:
            with open(spec, encoding="utf-8", errors="replace") as handle:
                if handle.read(9) == "# Sweep '":
                    return "sweep"
        except OSError:
            return None
    return None


def foreign_entries(folder: Path, kind: str) -> list[str]:
    """Names in ``folder`` that archsim did not write there (hidden staging/temp names aside)."""
    marker = read_marker(folder) or {}
    allowed = set(KIND_FILES[kind]) | {str(f) for f in marker.get("files", []) if isinstance(f, str)}
    names = []
    for entry in os.scandir(folder):
        ours = entry.name in allowed or (entry.name.startswith(".") and entry.name.endswith((".tmp", ".partial")))
        if not ours:
            names.append(entry.name)
    return sorted(names)


def _shown(names: list[str]) -> str:
    head = ", ".join(names[:3])
    return head + (f" and {len(names) - 3} more" if len(names) > 3 else "")


def resolve_target(path: Path, what: str) -> Path:
    """The absolute, symlink-free path ``path`` names; OutputError for a NUL byte, a symbolic
    link at the final name (dangling or not), a loop, or a name too long for the file system."""
    text = os.fspath(path)
    if "\x00" in text:
        raise OutputError(f"{what}: the path holds a NUL byte; give a plain path")
    if not text.strip():
        raise OutputError(f"{what}: empty path; give a folder name")
    check_name_length(Path(os.path.abspath(text)), what)  # before any call that would fail on it
    if path.is_symlink():
        try:
            points_to = os.readlink(path)
        except OSError:
            points_to = "?"
        state = "" if path.exists() else "dangling "
        raise OutputError(
            f"{what}: is a {state}symbolic link (to {points_to}); give the real path, archsim does "
            "not write through links"
        )
    try:
        final = path.resolve(strict=False)
    except (RuntimeError, OSError) as exc:
        reason = "symbolic link loop" if isinstance(exc, RuntimeError) or getattr(exc, "errno", 0) == errno.ELOOP else exc
        raise OutputError(f"{what}: cannot resolve the path ({reason}); fix the links or choose another path") from None
    check_name_length(final, what)
    return final


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:  # a name too long, a loop: not a usable folder
        return False


def check_name_length(final: Path, what: str) -> None:
    name_max, path_max = 255, 4096
    existing = next((p for p in final.parents if _is_dir(p)), Path("/"))
    try:
        name_max = os.pathconf(existing, "PC_NAME_MAX")
        path_max = os.pathconf(existing, "PC_PATH_MAX")
    except (OSError, ValueError):
        pass
    longest = max(len(os.fsencode(part)) for part in final.parts)
    if longest + LONGEST_SUFFIX > name_max:
        raise OutputError(
            f"{what}: a name in the path is {longest} bytes long; with the staging suffix it "
            f"exceeds the file system's {name_max}; choose a shorter name"
        )
    if len(os.fsencode(str(final))) + LONGEST_SUFFIX >= path_max:
        raise OutputError(f"{what}: the path is longer than the file system allows ({path_max}); choose a shorter one")


def check_not_protected(final: Path, what: str) -> None:
    """Never the current folder, one of its parents, the home folder or the root."""
    try:
        cwd = Path.cwd().resolve()
    except OSError:  # the current folder was deleted: nothing of it to protect
        cwd = Path("/")
    try:
        home: Path | None = Path.home().resolve()
    except (RuntimeError, OSError):
        home = None
    if final == cwd or final == Path("/") or final == home or final in cwd.parents:
        which = ("the current folder" if final == cwd else "the root folder" if final == Path("/")
                 else "the home folder" if final == home else "a parent of the current folder")
        raise OutputError(
            f"{what}: is {which} ({final}); archsim writes results into a folder of their own, "
            "never replaces this one: give a new folder name such as runs/my-run"
        )


def check_replaceable(final: Path, what: str, force: bool, kind: str = "run") -> None:
    """Refuse an existing non-empty folder unless ``force`` and it is archsim's own, whole."""
    if not final.exists():
        return
    if not final.is_dir():
        raise OutputError(f"{what}: exists and is not a folder; choose another path")
    try:
        empty = next(os.scandir(final), None) is None
    except OSError as exc:
        raise OutputError(f"{what}: cannot list the folder ({exc.strerror}); choose another path") from None
    if empty:
        return
    if not force:
        raise OutputError(f"{what}: folder already holds results; choose a new folder or pass --force to replace it")
    found = folder_kind(final)
    if found not in ("run", "incomplete"):
        raise OutputError(
            f"{what}: --force only replaces a run folder archsim made (it holds {MARKER}); this "
            "folder holds other files; move them or choose another folder"
        )
    foreign = foreign_entries(final, found)
    if foreign:
        raise OutputError(
            f"{what}: holds files archsim did not write ({_shown(foreign)}); --force will not "
            "delete them: move them out or choose another folder"
        )


def probe_writable(folder: Path, what: str) -> None:
    """Prove ``folder`` can be written (or created) by writing a scratch file in it or in its
    nearest existing ancestor; creates nothing that stays. One-line OutputError otherwise."""
    existing = folder
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    try:
        if not existing.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(existing))
        with tempfile.NamedTemporaryFile(dir=existing, prefix=".archsim-probe-"):
            pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise OutputError(f"{what}: cannot write in {folder} ({reason}); choose a writable folder") from None


@dataclass(frozen=True)
class RunTarget:
    """A checked run output: the folder and (optionally) the trace file."""

    final: Path
    trace: Path | None = None

    @property
    def trace_inside(self) -> bool:
        return self.trace is not None and self.final in self.trace.parents


def check_run_target(out: Path, force: bool, trace: Path | None = None) -> RunTarget:
    """Every check of ``--out`` (and ``--trace``) that can be made before training."""
    what = f"--out {out}"
    final = resolve_target(Path(out), what)
    check_not_protected(final, what)
    check_replaceable(final, what, force)
    probe_writable(final.parent, what)
    trace_final = None if trace is None else check_trace(Path(trace), force, final)
    return RunTarget(final, trace_final)


def check_trace(trace: Path, force: bool, run_folder: Path) -> Path:
    """``--trace``: a trace inside the run folder is written with the run (nothing to probe
    there yet)."""
    return check_file_target(trace, force, "--trace", run_folder)


def check_file_target(path: Path, force: bool, option: str, inside: Path | None = None) -> Path:
    """A result file (``--trace``, ``table --out``): new, or with --force an existing regular
    file, in a writable folder; never a folder or a symbolic link."""
    what = f"{option} {path}"
    final = resolve_target(Path(path), what)
    if final.is_dir():
        raise OutputError(f"{what}: is a folder; give a file name such as trace.json")
    if final.exists() and not force:
        raise OutputError(f"{what}: file exists; choose a new name or pass --force to replace it")
    if final.exists() and not final.is_file():
        raise OutputError(f"{what}: exists and is not a regular file; choose another path")
    if inside is None or inside not in final.parents:
        probe_writable(final.parent, what)
    return final


def check_sweep_target(output: Path, what: str) -> Path:
    """A sweep writes into new, empty or its own (marked) folders only; never a user's."""
    final = resolve_target(Path(output), what)
    check_not_protected(final, what)
    if final.exists() and not final.is_dir():
        raise OutputError(f"{what}: exists and is not a folder; choose another --out")
    if final.is_dir() and next(os.scandir(final), None) is not None and folder_kind(final) != "sweep":
        raise OutputError(
            f"{what}: folder holds files archsim did not write (it has no {MARKER} of a sweep); "
            "choose a new or empty folder with --out"
        )
    return final


# -- the lock ---------------------------------------------------------------------------------
def lock_path(final: Path) -> Path:
    return final.parent / f".{final.name}.lock"


@contextmanager
def output_lock(final: Path, what: str) -> Iterator[None]:
    """Hold ``.<name>.lock`` (flock, released by the kernel even on SIGKILL) until the block ends.

    A second archsim on the same target fails at once with one line naming the holder.
    """
    path = lock_path(final)
    created = [p for p in (final.parent, *final.parent.parents) if not os.path.lexists(p)]
    while True:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            raise OutputError(f"{what}: not writable: cannot create the lock {path} ({exc.strerror}); choose a writable folder") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = _lock_holder(fd)
            os.close(fd)
            raise OutputError(
                f"{what}: another archsim process{holder} is writing there now; wait for it to "
                "finish or choose another folder"
            ) from None
        # The previous holder may have unlinked the file between our open and flock: retry.
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except OSError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
    except OSError:
        pass  # the lock holds without the pid; it is only shown in the message
    try:
        yield
    finally:
        try:
            os.unlink(path)
        except OSError:
            pass
        os.close(fd)
        for folder in created:  # folders made only for this output, if it never came to be
            try:
                os.rmdir(folder)
            except OSError:
                break


def _lock_holder(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return f" (pid {text})" if text.isdigit() else ""


def sanitized_name(name: str, limit: int = 100) -> str:
    """A workload name made safe as one path component: letters, digits, '.', '_' and '-'
    only, no leading dot, at most ``limit`` characters; 'run' if nothing is left."""
    kept = "".join(c if (c.isascii() and (c.isalnum() or c in "._-")) else "-" for c in name)
    kept = kept.lstrip(".-")[:limit].rstrip(".")
    return kept or "run"
