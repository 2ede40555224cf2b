"""Loaders for the MNIST and Fashion-MNIST image data sets (IDX format).

The public entry point is :func:`load_split`, which returns the images of one split as a
read-only ``uint8`` array of shape ``(N, 784)`` and the labels as ``uint8`` of shape ``(N,)``.
No scaling or normalisation is done here.

Where the files are looked for, first match wins (see :func:`find_dataset_dir`):

1. the explicit ``data_dir`` argument (the CLI's ``--data-dir``);
2. the environment variable ``ARCHSIM_DATA``;
3. ``../shared/datasets/<name>`` next to the repository (found from this file and from the
   current working directory);
4. ``/usr/share/datasets/<name>`` (Debian's ``dataset-*`` packages);
5. the user cache, ``$XDG_CACHE_HOME/archsim/datasets/<name>`` or
   ``~/.cache/archsim/datasets/<name>``.

``data_dir`` and ``ARCHSIM_DATA`` may name either a folder holding ``mnist/`` and
``fashion-mnist/`` sub-folders or the folder holding the four files itself. An explicit choice
that holds no files is an error; the search never falls back past it.

Each file may be gzip-compressed (``.gz``) or raw. Only when nothing is found and downloads are
allowed (``download=True`` or ``ARCHSIM_ALLOW_DOWNLOAD=1``) are the files fetched from the
canonical mirror into the user cache. Every file is checked for its IDX structure and, when its
SHA-256 is known, for the checksum of its *decompressed* content. Every problem is raised as a
one-line :class:`~archsim.errors.DataError` naming the file and the fix.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import os
import shutil
import struct
import tempfile
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from archsim.errors import DataError
from archsim.limits import MAX_IDX_BYTES

PathLike = str | os.PathLike[str]

IMAGE_MAGIC = 2051  # 0x00000803: unsigned bytes, 3 dimensions
LABEL_MAGIC = 2049  # 0x00000801: unsigned bytes, 1 dimension

ENV_DATA_DIR = "ARCHSIM_DATA"
ENV_ALLOW_DOWNLOAD = "ARCHSIM_ALLOW_DOWNLOAD"
SYSTEM_DATASETS_DIR = Path("/usr/share/datasets")

SPLITS: dict[str, str] = {"train": "train", "test": "t10k"}
"""Split name -> file name prefix of the IDX files."""

_FIX = "delete it and re-download, or point --data-dir / ARCHSIM_DATA at a good copy"
_DOWNLOAD_TIMEOUT_S = 60.0
_CHUNK_BYTES = 4 * 2**20


@dataclass(frozen=True)
class DatasetSpec:
    """What is known about one data set: its download mirror, image shape and class count."""

    mirror: str | None
    image_shape: tuple[int, int] = (28, 28)
    num_classes: int = 10


_SPECS: dict[str, DatasetSpec] = {
    "mnist": DatasetSpec(mirror="https://ossci-datasets.s3.amazonaws.com/mnist/"),
    "fashion-mnist": DatasetSpec(
        mirror="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
    ),
}

DATASETS: tuple[str, ...] = tuple(_SPECS)  # ("mnist", "fashion-mnist")

SHA256_DECOMPRESSED: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    },
}
"""SHA-256 of the raw (decompressed) IDX content, keyed by data set and file stem."""


# --------------------------------------------------------------------------- names and paths


def _check_name(name: str) -> DatasetSpec:
    """Return the spec of data set ``name`` or raise a DataError listing the valid names."""
    try:
        return _SPECS[name]
    except (KeyError, TypeError):
        raise DataError(
            f"unknown dataset {name!r}; valid names: {', '.join(DATASETS)}"
        ) from None


def _check_split(name: str, split: str) -> str:
    """Return the file prefix of ``split`` or raise a DataError listing the valid splits."""
    try:
        return SPLITS[split]
    except (KeyError, TypeError):
        raise DataError(
            f"{name}: unknown split {split!r}; use one of: {', '.join(SPLITS)}"
        ) from None


def _split_stems(split_prefix: str) -> tuple[str, str]:
    """File stems (no ``.gz``) of the images and labels of one split."""
    return f"{split_prefix}-images-idx3-ubyte", f"{split_prefix}-labels-idx1-ubyte"


def _all_stems() -> list[str]:
    """File stems of every split of a data set."""
    return [stem for prefix in SPLITS.values() for stem in _split_stems(prefix)]


def _existing_file(directory: Path, stem: str) -> Path | None:
    """The raw or gzip file for ``stem`` in ``directory`` (raw preferred), or None."""
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    return None


def _holds_dataset(directory: Path) -> bool:
    """True if ``directory`` holds at least one of a data set's IDX files."""
    return directory.is_dir() and any(_existing_file(directory, s) for s in _all_stems())


def _shared_roots() -> list[Path]:
    """The ``shared/datasets`` folders next to the repository and next to the cwd."""
    roots = [
        Path(__file__).resolve().parents[2].parent / "shared" / "datasets",
        (Path.cwd() / ".." / "shared" / "datasets").resolve(),
    ]
    return list(dict.fromkeys(roots))


def cache_dir(name: str) -> Path:
    """The user cache folder for data set ``name`` (where downloads go)."""
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "archsim" / "datasets" / name


def _default_candidates(name: str) -> list[Path]:
    """Folders searched, in order, when neither ``data_dir`` nor ARCHSIM_DATA is given."""
    shared = [root / name for root in _shared_roots()]
    return [*shared, SYSTEM_DATASETS_DIR / name, cache_dir(name)]


def _explicit_candidates(name: str, root: Path) -> list[Path]:
    """Folders an explicit choice may mean: ``root/<name>`` or ``root`` itself.

    ``root`` itself is not accepted when it is named after *another* data set, so that
    ``--data-dir .../mnist`` cannot silently serve MNIST when Fashion-MNIST was asked for.
    """
    candidates = [root / name]
    if root.name == name or root.name not in _SPECS:
        candidates.append(root)
    return candidates


def _explicit_root(data_dir: PathLike | None) -> tuple[Path, str] | None:
    """The folder chosen by ``data_dir`` or else ARCHSIM_DATA, with where it came from."""
    if data_dir is not None:
        return Path(data_dir).expanduser(), "data_dir / --data-dir"
    env_dir = os.environ.get(ENV_DATA_DIR)
    if env_dir:
        return Path(env_dir).expanduser(), ENV_DATA_DIR
    return None


def _locate(name: str, data_dir: PathLike | None) -> tuple[Path | None, list[Path]]:
    """Search for data set ``name``; return (folder or None, folders searched).

    Raises DataError when an explicit ``data_dir`` or ARCHSIM_DATA holds no files.
    """
    explicit = _explicit_root(data_dir)
    if explicit is not None:
        root, origin = explicit
        candidates = _explicit_candidates(name, root)
        for candidate in candidates:
            if _holds_dataset(candidate):
                return candidate, candidates
        looked = ", ".join(str(c) for c in candidates)
        raise DataError(
            f"{name}: no dataset files in {root} (given by {origin}; looked in {looked}); "
            f"point it at a folder holding {name}/ or the four *-ubyte[.gz] files"
        )
    candidates = _default_candidates(name)
    for candidate in candidates:
        if _holds_dataset(candidate):
            return candidate, candidates
    return None, candidates


def _not_found_error(name: str, searched: list[Path]) -> DataError:
    """The one-line error for a data set found nowhere."""
    return DataError(
        f"{name}: dataset not found (searched: {', '.join(str(p) for p in searched)}); "
        f"pass --data-dir DIR or set {ENV_DATA_DIR}=DIR (a folder holding {name}/ or its "
        f"four *-ubyte[.gz] files), or set {ENV_ALLOW_DOWNLOAD}=1 to download into "
        f"{cache_dir(name)}"
    )


def find_dataset_dir(name: str, data_dir: PathLike | None = None) -> Path:
    """Return the folder holding the IDX files of data set ``name``.

    Look-up order: ``data_dir``, ``$ARCHSIM_DATA``, ``../shared/datasets/<name>`` (relative to
    the repository and to the cwd), ``/usr/share/datasets/<name>``, the user cache. Raises
    :class:`DataError` if the data set is found nowhere or an explicit choice holds no files.
    """
    _check_name(name)
    found, searched = _locate(name, data_dir)
    if found is None:
        raise _not_found_error(name, searched)
    return found


# --------------------------------------------------------------------------- reading and checks


def _read_bytes(name: str, path: Path, compressed: bool | None = None) -> bytes:
    """The decompressed content of ``path`` (gzip if ``compressed``; default: ends in .gz).

    Streamed in chunks and capped at :data:`~archsim.limits.MAX_IDX_BYTES`, so a small gzip
    that inflates to gigabytes (or a huge raw file) is refused without being read whole.
    """
    if compressed is None:
        compressed = path.suffix == ".gz"
    limit = MAX_IDX_BYTES
    try:
        opener = gzip.open if compressed else open
        with opener(path, "rb") as handle:
            chunks, size = [], 0
            while size <= limit:
                chunk = handle.read(min(_CHUNK_BYTES, limit + 1 - size))
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
        if size > limit:
            raise DataError(
                f"{name}: file {path} {'decompresses to' if compressed else 'is'} more than "
                f"{limit // 2**20} MiB, far more than an MNIST-sized IDX file; {_FIX}"
            )
        return b"".join(chunks)
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise DataError(
            f"{name}: file {path} is not a valid gzip file or is cut short ({exc}); {_FIX}"
        ) from None
    except OSError as exc:
        raise DataError(f"{name}: cannot read file {path} ({exc.strerror or exc}); {_FIX}") from None


def _parse_header(name: str, path: Path, data: bytes, magic: int) -> tuple[int, ...]:
    """Check the IDX magic number of ``data`` and return its dimensions."""
    ndim = magic & 0xFF
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise DataError(
            f"{name}: file {path} is truncated (header needs {header_len} bytes, "
            f"got {len(data)}); {_FIX}"
        )
    (found,) = struct.unpack(">I", data[:4])
    if found != magic:
        raise DataError(
            f"{name}: file {path} has wrong magic number {found} (expected {magic}); "
            f"it is not an IDX {'image' if magic == IMAGE_MAGIC else 'label'} file; {_FIX}"
        )
    return struct.unpack(f">{ndim}I", data[4:header_len])


def _check_payload(name: str, path: Path, data: bytes, dims: tuple[int, ...], what: str) -> None:
    """Check that the payload after the header has exactly the size the header announces."""
    expected = int(np.prod(dims, dtype=np.int64))
    got = len(data) - 4 - 4 * len(dims)
    if got < expected:
        raise DataError(
            f"{name}: file {path} is truncated (expected {expected} bytes of {what} data, "
            f"got {got}); {_FIX}"
        )
    if got > expected:
        raise DataError(
            f"{name}: file {path} has {got - expected} unexpected trailing bytes "
            f"(expected {expected} bytes of {what} data); {_FIX}"
        )


def _check_sha256(name: str, path: Path, data: bytes) -> None:
    """Compare the SHA-256 of ``data`` with the embedded constant, if one is known."""
    stem = path.name.removesuffix(".gz")
    expected = SHA256_DECOMPRESSED.get(name, {}).get(stem)
    if expected is None:
        return
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected:
        raise DataError(
            f"{name}: file {path} fails its checksum (sha256 of decompressed content "
            f"{actual[:12]}..., expected {expected[:12]}...); {_FIX} "
            f"(use verify=False only for deliberately modified data)"
        )


def _parse_images(name: str, path: Path, verify: bool, shape: tuple[int, int]) -> np.ndarray:
    """Read an IDX image file into a read-only uint8 array of shape (N, rows*cols)."""
    data = _read_bytes(name, path)
    dims = _parse_header(name, path, data, IMAGE_MAGIC)
    if tuple(dims[1:]) != shape:
        raise DataError(
            f"{name}: file {path} holds {dims[1]}x{dims[2]} images, expected "
            f"{shape[0]}x{shape[1]}; {_FIX}"
        )
    _check_payload(name, path, data, dims, "image")
    if verify:
        _check_sha256(name, path, data)
    images = np.frombuffer(data, dtype=np.uint8, offset=16).reshape(dims[0], shape[0] * shape[1])
    return images


def _parse_labels(name: str, path: Path, verify: bool, num_classes: int) -> np.ndarray:
    """Read an IDX label file into a read-only uint8 array of shape (N,)."""
    data = _read_bytes(name, path)
    dims = _parse_header(name, path, data, LABEL_MAGIC)
    _check_payload(name, path, data, dims, "label")
    if verify:
        _check_sha256(name, path, data)
    labels = np.frombuffer(data, dtype=np.uint8, offset=8)
    if labels.size and int(labels.max()) >= num_classes:
        raise DataError(
            f"{name}: file {path} has label {int(labels.max())}, expected 0..{num_classes - 1}; "
            f"{_FIX}"
        )
    return labels


@functools.lru_cache(maxsize=8)
def _load_cached(
    name: str,
    images_path: Path,
    labels_path: Path,
    file_stamps: tuple[tuple[int, int], ...],
    verify: bool,
) -> tuple[np.ndarray, np.ndarray]:
    """Parse one split; cached per resolved file pair (``file_stamps`` = size, mtime)."""
    del file_stamps  # only part of the cache key, so that a replaced file is re-read
    spec = _SPECS[name]
    images = _parse_images(name, images_path, verify, spec.image_shape)
    labels = _parse_labels(name, labels_path, verify, spec.num_classes)
    if images.shape[0] != labels.shape[0]:
        raise DataError(
            f"{name}: file {images_path} holds {images.shape[0]} images but {labels_path} "
            f"holds {labels.shape[0]} labels; {_FIX}"
        )
    for array in (images, labels):
        array.flags.writeable = False
    return images, labels


def clear_cache() -> None:
    """Forget the arrays cached in memory by :func:`load_split`."""
    _load_cached.cache_clear()


# --------------------------------------------------------------------------- downloading


def _downloads_allowed(download: bool) -> bool:
    """True if the caller or ARCHSIM_ALLOW_DOWNLOAD=1 allows network downloads."""
    return download or os.environ.get(ENV_ALLOW_DOWNLOAD, "").strip() == "1"


def _fetch(url: str, dest: Path) -> None:
    """Download ``url`` to the file ``dest`` (overwritten)."""
    with urllib.request.urlopen(url, timeout=_DOWNLOAD_TIMEOUT_S) as response:
        with open(dest, "wb") as handle:
            shutil.copyfileobj(response, handle)


def _download(name: str, stem: str, directory: Path) -> Path:
    """Download ``<stem>.gz`` of data set ``name`` into ``directory``, verified, atomically."""
    mirror = _SPECS[name].mirror
    dest = directory / f"{stem}.gz"
    if mirror is None:
        raise DataError(
            f"{name}: file {dest} is missing and no download mirror is known; "
            f"copy it there or point --data-dir / {ENV_DATA_DIR} at a folder holding it"
        )
    url = mirror + dest.name
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=directory, prefix=f".{dest.name}.", suffix=".part")
        os.close(fd)
    except OSError as exc:
        raise DataError(
            f"{name}: cannot write download folder {directory} ({exc.strerror or exc}); "
            f"make it writable or set XDG_CACHE_HOME to a writable folder"
        ) from None
    tmp = Path(tmp_name)
    try:
        try:
            _fetch(url, tmp)
        except OSError as exc:  # urllib.error.URLError is an OSError
            raise DataError(
                f"{name}: download of {url} to {dest} failed ({exc}); check the network, or "
                f"copy the file there by hand or point --data-dir / {ENV_DATA_DIR} at a copy"
            ) from None
        _check_sha256(name, dest, _read_bytes(name, tmp, compressed=True))
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest


# --------------------------------------------------------------------------- public loader


def _split_file(name: str, directory: Path, stem: str, may_download: bool) -> Path:
    """The existing file for ``stem`` in ``directory``, downloading it if allowed."""
    path = _existing_file(directory, stem)
    if path is not None:
        return path
    if may_download:
        return _download(name, stem, directory)
    hint = f", or set {ENV_ALLOW_DOWNLOAD}=1" if directory == cache_dir(name) else ""
    raise DataError(
        f"{name}: file {directory / stem}[.gz] is missing; restore it or point --data-dir / "
        f"{ENV_DATA_DIR} at a complete copy{hint}"
    )


def _stamp(path: Path) -> tuple[int, int]:
    """(size, mtime in ns) of ``path``, so the cache notices a replaced file."""
    stat = path.stat()
    return stat.st_size, stat.st_mtime_ns


def load_split(
    name: str,
    split: str,
    data_dir: PathLike | None = None,
    *,
    download: bool = False,
    verify: bool = True,
) -> tuple[np.ndarray, np.ndarray]:
    """Load one split of a data set.

    Args:
        name: one of :data:`DATASETS`.
        split: ``"train"`` or ``"test"``.
        data_dir: folder holding ``<name>/`` or the data set's files; see
            :func:`find_dataset_dir` for where else is looked.
        download: fetch missing files from the canonical mirror into the user cache when the
            data set is found nowhere (also enabled by ``ARCHSIM_ALLOW_DOWNLOAD=1``).
        verify: check the SHA-256 of the decompressed files (skip for user-made data).

    Returns:
        ``(images, labels)``: read-only C-contiguous ``uint8`` arrays of shapes ``(N, 784)``
        and ``(N,)``. Pixels are raw 0..255 values. Repeated calls return cached arrays.

    Raises:
        DataError: unknown name or split, data set missing, or a file truncated, corrupted
            or failing its checksum.
    """
    _check_name(name)
    images_stem, labels_stem = _split_stems(_check_split(name, split))
    allowed = _downloads_allowed(download)
    directory, searched = _locate(name, data_dir)
    if directory is None:
        if not allowed:
            raise _not_found_error(name, searched)
        directory = cache_dir(name)
    may_download = allowed and directory == cache_dir(name)
    images_path = _split_file(name, directory, images_stem, may_download).resolve()
    labels_path = _split_file(name, directory, labels_stem, may_download).resolve()
    stamps = (_stamp(images_path), _stamp(labels_path))
    return _load_cached(name, images_path, labels_path, stamps, verify)
