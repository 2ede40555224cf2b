"""Tests of archsim.data.datasets: real files, look-up order, damaged files, downloads."""

from __future__ import annotations

import gzip
import shutil
import struct
import urllib.error
from pathlib import Path

import numpy as np
import pytest

from archsim.data import DATASETS, find_dataset_dir, load_split
from archsim.data import datasets as ds
from archsim.errors import DataError

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
IMAGES = "t10k-images-idx3-ubyte"
LABELS = "t10k-labels-idx1-ubyte"

needs_shared = pytest.mark.skipif(
    not (SHARED / "mnist").is_dir(), reason=f"offline datasets not present in {SHARED}"
)


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No user settings leak in; the user cache is a fresh folder."""
    monkeypatch.delenv(ds.ENV_DATA_DIR, raising=False)
    monkeypatch.delenv(ds.ENV_ALLOW_DOWNLOAD, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg-cache"))


@pytest.fixture
def no_default_places(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Point the shared and system folders at empty places under ``tmp_path``."""
    monkeypatch.setattr(ds, "_shared_roots", lambda: [tmp_path / "shared"])
    monkeypatch.setattr(ds, "SYSTEM_DATASETS_DIR", tmp_path / "system")
    return tmp_path


@pytest.fixture(scope="session")
def mnist_test_raw() -> dict[str, bytes]:
    """Decompressed content of the real MNIST test split."""
    if not (SHARED / "mnist").is_dir():
        pytest.skip(f"offline datasets not present in {SHARED}")
    return {
        stem: gzip.decompress((SHARED / "mnist" / f"{stem}.gz").read_bytes())
        for stem in (IMAGES, LABELS)
    }


def write_split(directory: Path, files: dict[str, bytes], gz: bool = False) -> Path:
    """Write ``files`` (stem -> raw content) into ``directory``, optionally gzip-compressed."""
    directory.mkdir(parents=True, exist_ok=True)
    for stem, data in files.items():
        if gz:
            (directory / f"{stem}.gz").write_bytes(gzip.compress(data, compresslevel=1))
        else:
            (directory / stem).write_bytes(data)
    return directory


def assert_one_line_naming(exc: pytest.ExceptionInfo[DataError], path: Path) -> None:
    """The error is one line and names ``path``."""
    message = str(exc.value)
    assert "\n" not in message
    assert str(path) in message


# --------------------------------------------------------------------------- real files


@needs_shared
@pytest.mark.parametrize("name", DATASETS)
@pytest.mark.parametrize("split, count", [("train", 60000), ("test", 10000)])
def test_real_files_shapes_and_dtypes(name: str, split: str, count: int) -> None:
    images, labels = load_split(name, split)
    assert images.shape == (count, 784) and images.dtype == np.uint8
    assert labels.shape == (count,) and labels.dtype == np.uint8
    assert images.flags.c_contiguous
    assert set(np.unique(labels)) == set(range(10))


@needs_shared
@pytest.mark.parametrize("name, mean", [("mnist", 0.1307), ("fashion-mnist", 0.2860)])
def test_reference_train_mean(name: str, mean: float) -> None:
    images, _ = load_split(name, "train")
    assert images.mean(dtype=np.float64) / 255.0 == pytest.approx(mean, abs=5e-4)


@needs_shared
def test_arrays_are_read_only_and_cached() -> None:
    images, labels = load_split("mnist", "test")
    assert not images.flags.writeable and not labels.flags.writeable
    with pytest.raises(ValueError):
        images[0, 0] = 1
    again = load_split("mnist", "test", data_dir=SHARED)
    assert again[0] is images and again[1] is labels


def test_unknown_dataset_lists_valid_names() -> None:
    with pytest.raises(DataError, match="unknown dataset 'cifar'.*mnist, fashion-mnist"):
        load_split("cifar", "train")
    with pytest.raises(DataError, match="unknown dataset"):
        find_dataset_dir("cifar")


def test_unknown_split_lists_valid_splits() -> None:
    with pytest.raises(DataError, match="unknown split 'val'.*train, test"):
        load_split("mnist", "val")


# --------------------------------------------------------------------------- look-up order


def test_explicit_dir_beats_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mnist_test_raw: dict[str, bytes]
) -> None:
    good = write_split(tmp_path / "good" / "mnist", mnist_test_raw)
    (tmp_path / "empty").mkdir()
    monkeypatch.setenv(ds.ENV_DATA_DIR, str(tmp_path / "empty"))
    assert find_dataset_dir("mnist", tmp_path / "good") == good
    images, _ = load_split("mnist", "test", data_dir=str(tmp_path / "good"))
    assert images.shape == (10000, 784)


def test_env_var_works_in_both_forms(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, mnist_test_raw: dict[str, bytes]
) -> None:
    folder = write_split(tmp_path / "root" / "mnist", mnist_test_raw)
    monkeypatch.setenv(ds.ENV_DATA_DIR, str(tmp_path / "root"))
    assert find_dataset_dir("mnist") == folder
    monkeypatch.setenv(ds.ENV_DATA_DIR, str(folder))
    assert find_dataset_dir("mnist") == folder
    assert load_split("mnist", "test")[1].shape == (10000,)


@needs_shared
def test_explicit_empty_dir_is_an_error_without_fallback(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv(ds.ENV_DATA_DIR, str(SHARED))
    with pytest.raises(DataError, match="no dataset files") as exc:
        load_split("mnist", "test", data_dir=empty, download=True)
    assert_one_line_naming(exc, empty)
    monkeypatch.setenv(ds.ENV_DATA_DIR, str(empty))
    with pytest.raises(DataError, match="ARCHSIM_DATA"):
        find_dataset_dir("mnist")


def test_dir_of_other_dataset_is_not_taken(
    tmp_path: Path, mnist_test_raw: dict[str, bytes]
) -> None:
    folder = write_split(tmp_path / "mnist", mnist_test_raw)
    assert find_dataset_dir("mnist", folder) == folder
    with pytest.raises(DataError, match="fashion-mnist: no dataset files"):
        find_dataset_dir("fashion-mnist", folder)


def test_default_order_shared_then_system_then_cache(
    no_default_places: Path, mnist_test_raw: dict[str, bytes]
) -> None:
    cache = write_split(ds.cache_dir("mnist"), mnist_test_raw, gz=True)
    assert cache == no_default_places / "xdg-cache" / "archsim" / "datasets" / "mnist"
    assert find_dataset_dir("mnist") == cache
    system = write_split(no_default_places / "system" / "mnist", mnist_test_raw)
    assert find_dataset_dir("mnist") == system
    shared = write_split(no_default_places / "shared" / "mnist", mnist_test_raw)
    assert find_dataset_dir("mnist") == shared


@needs_shared
def test_default_search_finds_shared_folder() -> None:
    assert find_dataset_dir("fashion-mnist") == SHARED / "fashion-mnist"


def test_not_found_lists_places_and_fixes(no_default_places: Path) -> None:
    with pytest.raises(DataError) as exc:
        load_split("mnist", "train")
    message = str(exc.value)
    assert "\n" not in message and "dataset not found" in message
    for place in ("shared", "system", "xdg-cache"):
        assert str(no_default_places / place) in message
    for fix in ("--data-dir", "ARCHSIM_DATA", "ARCHSIM_ALLOW_DOWNLOAD=1"):
        assert fix in message


# --------------------------------------------------------------------------- file formats


def test_raw_and_gzip_copies_load_the_same(
    tmp_path: Path, mnist_test_raw: dict[str, bytes]
) -> None:
    raw = load_split("mnist", "test", write_split(tmp_path / "raw", mnist_test_raw))
    gz = load_split("mnist", "test", write_split(tmp_path / "gz", mnist_test_raw, gz=True))
    np.testing.assert_array_equal(raw[0], gz[0])
    np.testing.assert_array_equal(raw[1], gz[1])
    assert raw[1].tolist()[:5] == [7, 2, 1, 0, 4]


def _truncated(data: dict[str, bytes], stem: str) -> dict[str, bytes]:
    return {**data, stem: data[stem][:-100]}


def _wrong_magic(data: dict[str, bytes], stem: str) -> dict[str, bytes]:
    return {**data, stem: struct.pack(">I", 1234) + data[stem][4:]}


def _flipped(data: dict[str, bytes], stem: str) -> dict[str, bytes]:
    damaged = bytearray(data[stem])
    damaged[len(damaged) // 2] ^= 0xFF
    damaged[-1] ^= 0x01
    return {**data, stem: bytes(damaged)}


@pytest.mark.parametrize("stem", [IMAGES, LABELS])
@pytest.mark.parametrize(
    "damage, pattern",
    [(_truncated, "is truncated"), (_wrong_magic, "wrong magic number"), (_flipped, "checksum")],
)
def test_damaged_file_names_the_file(
    tmp_path: Path, mnist_test_raw: dict[str, bytes], stem: str, damage, pattern: str
) -> None:
    folder = write_split(tmp_path / "mnist", damage(mnist_test_raw, stem))
    with pytest.raises(DataError, match=pattern) as exc:
        load_split("mnist", "test", data_dir=tmp_path)
    assert_one_line_naming(exc, folder / stem)
    assert "re-download" in str(exc.value)


def test_missing_file_names_the_file(tmp_path: Path, mnist_test_raw: dict[str, bytes]) -> None:
    folder = write_split(tmp_path / "mnist", {IMAGES: mnist_test_raw[IMAGES]})
    with pytest.raises(DataError, match="is missing") as exc:
        load_split("mnist", "test", data_dir=folder)
    assert_one_line_naming(exc, folder / LABELS)


@pytest.mark.parametrize("content", ["not gzip", "cut gzip"])
def test_bad_gzip_names_the_file(
    tmp_path: Path, mnist_test_raw: dict[str, bytes], content: str
) -> None:
    folder = write_split(tmp_path / "mnist", mnist_test_raw, gz=True)
    bad = folder / f"{IMAGES}.gz"
    if content == "not gzip":
        bad.write_bytes(mnist_test_raw[IMAGES])
    else:
        bad.write_bytes(bad.read_bytes()[:5000])
    with pytest.raises(DataError, match="gzip") as exc:
        load_split("mnist", "test", data_dir=folder)
    assert_one_line_naming(exc, bad)


def test_verify_false_accepts_modified_data(
    tmp_path: Path, mnist_test_raw: dict[str, bytes]
) -> None:
    folder = write_split(tmp_path / "mnist", _flipped(mnist_test_raw, IMAGES))
    images, _ = load_split("mnist", "test", data_dir=folder, verify=False)
    assert images.shape == (10000, 784)


def test_count_mismatch_names_both_files(
    tmp_path: Path, mnist_test_raw: dict[str, bytes]
) -> None:
    labels = struct.pack(">II", ds.LABEL_MAGIC, 9999) + mnist_test_raw[LABELS][8:-1]
    folder = write_split(tmp_path / "mnist", {IMAGES: mnist_test_raw[IMAGES], LABELS: labels})
    with pytest.raises(DataError, match="10000 images but") as exc:
        load_split("mnist", "test", data_dir=folder, verify=False)
    assert_one_line_naming(exc, folder / IMAGES)
    assert str(folder / LABELS) in str(exc.value)


def test_replaced_file_is_reread(tmp_path: Path, mnist_test_raw: dict[str, bytes]) -> None:
    folder = write_split(tmp_path / "mnist", mnist_test_raw)
    load_split("mnist", "test", data_dir=folder)
    write_split(folder, _truncated(mnist_test_raw, LABELS))
    with pytest.raises(DataError, match="truncated"):
        load_split("mnist", "test", data_dir=folder)


# --------------------------------------------------------------------------- downloads


@pytest.fixture
def fake_mirror(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Replace the network fetch by a copy from the shared folder; return the URLs asked."""
    if not (SHARED / "mnist").is_dir():
        pytest.skip(f"offline datasets not present in {SHARED}")
    asked: list[str] = []

    def fetch(url: str, dest: Path) -> None:
        asked.append(url)
        shutil.copyfile(SHARED / "mnist" / url.rsplit("/", 1)[1], dest)

    monkeypatch.setattr(ds, "_fetch", fetch)
    return asked


def test_download_into_cache(no_default_places: Path, fake_mirror: list[str]) -> None:
    images, labels = load_split("mnist", "test", download=True)
    assert images.shape == (10000, 784) and labels.shape == (10000,)
    cache = ds.cache_dir("mnist")
    assert sorted(p.name for p in cache.iterdir()) == [f"{IMAGES}.gz", f"{LABELS}.gz"]
    assert fake_mirror == [
        f"https://ossci-datasets.s3.amazonaws.com/mnist/{IMAGES}.gz",
        f"https://ossci-datasets.s3.amazonaws.com/mnist/{LABELS}.gz",
    ]
    load_split("mnist", "test", download=True)
    assert len(fake_mirror) == 2  # already there: no second download


def test_download_enabled_by_env(
    monkeypatch: pytest.MonkeyPatch, no_default_places: Path, fake_mirror: list[str]
) -> None:
    monkeypatch.setenv(ds.ENV_ALLOW_DOWNLOAD, "1")
    assert load_split("mnist", "test")[0].shape == (10000, 784)
    assert len(fake_mirror) == 2


def test_no_download_without_permission(
    no_default_places: Path, fake_mirror: list[str]
) -> None:
    with pytest.raises(DataError, match="ARCHSIM_ALLOW_DOWNLOAD=1"):
        load_split("mnist", "test")
    assert fake_mirror == []


def test_corrupt_download_is_rejected_and_not_kept(
    monkeypatch: pytest.MonkeyPatch, no_default_places: Path, fake_mirror: list[str]
) -> None:
    def fetch(url: str, dest: Path) -> None:
        dest.write_bytes(gzip.compress(b"\x00" * 100))

    monkeypatch.setattr(ds, "_fetch", fetch)
    with pytest.raises(DataError, match="checksum") as exc:
        load_split("mnist", "test", download=True)
    assert_one_line_naming(exc, ds.cache_dir("mnist") / f"{IMAGES}.gz")
    assert list(ds.cache_dir("mnist").iterdir()) == []


def test_failed_download_is_a_data_error(
    monkeypatch: pytest.MonkeyPatch, no_default_places: Path
) -> None:
    def fetch(url: str, dest: Path) -> None:
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(ds, "_fetch", fetch)
    with pytest.raises(DataError, match="download of .* failed") as exc:
        load_split("fashion-mnist", "train", download=True)
    assert "fashion-mnist.s3-website" in str(exc.value)
    assert list(ds.cache_dir("fashion-mnist").iterdir()) == []
