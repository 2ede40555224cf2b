"""Tasks of a continual-learning sequence, chosen by name from a registry.

A task (one entry of a workload's ``tasks:`` list) is a data set and a *kind* saying which
part of it, or which transform of it, the task trains and is tested on:

``dataset``
    The whole data set (the paper's MNIST -> Fashion-MNIST).
``permuted``
    The data set with its 784 pixels reordered by one fixed random permutation, drawn from
    ``np.random.default_rng(seed)``: permuted MNIST (Goodfellow et al., "An empirical
    investigation of catastrophic forgetting in gradient-based neural networks", arXiv
    1312.6211, 2013; Laborieux et al., Nat. Commun. 12, 2549, 2021, Fig. 2: six tasks).
    Laborieux et al.'s code (github Laborieux-Axel/SynapticMetaplasticityBNN,
    ``create_permuted_loaders``) permutes every task, the first included.
``split``
    Only the images of some classes (split MNIST: Zenke, Poole & Ganguli, "Continual learning
    through synaptic intelligence", ICML 2017). With ``relabel`` the classes of a task are
    numbered 0, 1, ... within the task (the "domain-incremental" scenario of van de Ven &
    Tolias, arXiv 1904.07734, 2019); without, labels stay global (class-incremental).
``stream-chunk``
    Chunk ``chunk`` of ``chunks`` equal chunks of the training set, shuffled once with
    ``np.random.default_rng(seed)``: a stream with no task boundaries (Laborieux et al. 2021,
    Fig. 4a; their Stream_Learning_FMNIST code shuffles the training set once and cuts it
    into ``nb_subset`` equal parts trained one after the other). Every chunk is drawn from the
    same distribution, so chunk k is tested on the k-th of ``chunks`` equal slices of the test
    (and validation) set: the mean of the last row of the accuracy matrix is the accuracy on
    the whole test set.

A *sequence* (the workload's ``sequence:`` shorthand) generates the task list of N tasks of
one kind: see :data:`SEQUENCE_KINDS`.

Adding a kind: write a ``build`` function ``(task, SourceSplits) -> TaskData``, list the
task fields it needs in a :class:`TaskKind` and add it to :data:`TASK_KINDS`; a sequence
generator goes in :data:`SEQUENCE_KINDS`. Tests go in ``tests/test_tasks.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from archsim.data.datasets import load_split

if TYPE_CHECKING:
    from archsim.config.workload import SequenceConfig, TaskConfig

N_PIXELS = 784
N_CLASSES = 10


def to_unit_float(images: np.ndarray) -> np.ndarray:
    """uint8 pixels to float32 in [0, 1] (the DAC's input range)."""
    return images.astype(np.float32) * np.float32(1.0 / 255.0)


@dataclass(frozen=True)
class TaskData:
    """Training, validation and test data of one task.

    Images are kept as uint8 (views of the cached data set where possible) and turned into
    float32 in [0, 1], in the task's pixel order, each time an ``*_x`` array is read: a long
    sequence then holds one task's float training set at a time, not N of them.
    """

    name: str
    train_images: np.ndarray
    train_y: np.ndarray
    val_images: np.ndarray
    val_y: np.ndarray
    test_images: np.ndarray
    test_y: np.ndarray
    pixel_order: np.ndarray | None = None

    def _pixels(self, images: np.ndarray) -> np.ndarray:
        ordered = images if self.pixel_order is None else images[:, self.pixel_order]
        return to_unit_float(ordered)

    @property
    def train_x(self) -> np.ndarray:
        return self._pixels(self.train_images)

    @property
    def val_x(self) -> np.ndarray:
        return self._pixels(self.val_images)

    @property
    def test_x(self) -> np.ndarray:
        return self._pixels(self.test_images)


@dataclass(frozen=True)
class SourceSplits:
    """The raw data set of a task, train already cut from the validation hold-out."""

    train_images: np.ndarray
    train_labels: np.ndarray
    val_images: np.ndarray
    val_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray


def load_source(dataset: str, data_dir: str | None, validation_size: int,
                with_test: bool = True) -> SourceSplits:
    """Train (all but the last ``validation_size`` images), validation and test of a data set;
    ``with_test=False`` never reads the test set (its arrays are empty)."""
    train_images, train_labels = load_split(dataset, "train", data_dir)
    if with_test:
        test_images, test_labels = load_split(dataset, "test", data_dir)
    else:
        test_images, test_labels = train_images[:0], train_labels[:0]
    n_train = train_images.shape[0] - validation_size
    return SourceSplits(
        train_images[:n_train], train_labels[:n_train],
        train_images[n_train:], train_labels[n_train:],
        test_images, test_labels,
    )


def _labels(labels: np.ndarray) -> np.ndarray:
    return labels.astype(np.int64)


def _limited(task: TaskConfig, source: SourceSplits, name: str = "") -> TaskData:
    """TaskData from ``source`` with the task's train and test limits applied."""
    train_end = source.train_images.shape[0] if task.train_limit is None else task.train_limit
    test_end = source.test_images.shape[0] if task.test_limit is None else task.test_limit
    return TaskData(
        name=name or task.name,
        train_images=source.train_images[:train_end],
        train_y=_labels(source.train_labels[:train_end]),
        val_images=source.val_images,
        val_y=_labels(source.val_labels),
        test_images=source.test_images[:test_end],
        test_y=_labels(source.test_labels[:test_end]),
    )


def build_dataset(task: TaskConfig, source: SourceSplits) -> TaskData:
    return _limited(task, source)


def pixel_permutation(seed: int) -> np.ndarray:
    """The fixed pixel order of a permuted task, drawn from its own seeded generator."""
    return np.random.default_rng(seed).permutation(N_PIXELS)


def build_permuted(task: TaskConfig, source: SourceSplits) -> TaskData:
    return replace(_limited(task, source), pixel_order=pixel_permutation(task.seed))


def _select_classes(images: np.ndarray, labels: np.ndarray, classes: list[int], relabel: bool):
    keep = np.isin(labels, classes)
    kept_labels = labels[keep].astype(np.int64)
    if relabel:
        # Class c of the task becomes its index in ``classes``.
        lookup = np.zeros(N_CLASSES, dtype=np.int64)
        lookup[classes] = np.arange(len(classes))
        kept_labels = lookup[kept_labels]
    return images[keep], kept_labels


def build_split(task: TaskConfig, source: SourceSplits) -> TaskData:
    classes, relabel = list(task.classes), bool(task.relabel)
    parts = [
        _select_classes(images, labels, classes, relabel)
        for images, labels in (
            (source.train_images, source.train_labels),
            (source.val_images, source.val_labels),
            (source.test_images, source.test_labels),
        )
    ]
    (tr_x, tr_y), (va_x, va_y), (te_x, te_y) = parts
    train_end = tr_x.shape[0] if task.train_limit is None else task.train_limit
    test_end = te_x.shape[0] if task.test_limit is None else task.test_limit
    return TaskData(task.name, tr_x[:train_end], tr_y[:train_end], va_x, va_y,
                    te_x[:test_end], te_y[:test_end])


def chunk_bounds(n: int, chunk: int, chunks: int) -> tuple[int, int]:
    """[start, end) of chunk ``chunk`` when ``n`` items are cut into ``chunks`` near-equal parts."""
    return chunk * n // chunks, (chunk + 1) * n // chunks


def build_stream_chunk(task: TaskConfig, source: SourceSplits) -> TaskData:
    n_train = source.train_images.shape[0] if task.train_limit is None else task.train_limit
    order = np.random.default_rng(task.seed).permutation(source.train_images.shape[0])[:n_train]
    start, end = chunk_bounds(n_train, task.chunk, task.chunks)
    rows = np.sort(order[start:end])  # sorted rows read faster; training shuffles anyway
    n_test = source.test_images.shape[0] if task.test_limit is None else task.test_limit
    t0, t1 = chunk_bounds(n_test, task.chunk, task.chunks)
    v0, v1 = chunk_bounds(source.val_images.shape[0], task.chunk, task.chunks)
    return TaskData(
        task.name,
        source.train_images[rows], _labels(source.train_labels[rows]),
        source.val_images[v0:v1], _labels(source.val_labels[v0:v1]),
        source.test_images[t0:t1], _labels(source.test_labels[t0:t1]),
    )


@dataclass(frozen=True)
class TaskKind:
    """One kind of task: the fields of ``TaskConfig`` it needs and how its data is built."""

    name: str
    needs: tuple[str, ...]
    build: Callable[[Any, SourceSplits], TaskData]
    allows: tuple[str, ...] = ()


TASK_PARAMETERS = ("seed", "classes", "relabel", "chunk", "chunks")
"""TaskConfig fields that only some kinds use."""

TASK_KINDS: dict[str, TaskKind] = {
    kind.name: kind
    for kind in (
        TaskKind("dataset", (), build_dataset),
        TaskKind("permuted", ("seed",), build_permuted),
        TaskKind("split", ("classes",), build_split, allows=("relabel",)),
        TaskKind("stream-chunk", ("seed", "chunk", "chunks"), build_stream_chunk),
    )
}


def task_problem(task: TaskConfig) -> str | None:
    """What is wrong with the kind-specific fields of ``task`` (None if nothing)."""
    kind = TASK_KINDS.get(task.kind)
    if kind is None:
        return f"unknown task kind {task.kind!r}; use one of: {', '.join(TASK_KINDS)}"
    for name in kind.needs:
        if getattr(task, name) is None:
            return f"a '{task.kind}' task needs '{name}'; add it"
    for name in TASK_PARAMETERS:
        value = getattr(task, name)
        if name not in kind.needs + kind.allows and value not in (None, False):
            return f"'{name}' has no meaning for a '{task.kind}' task; remove it"
    if task.kind == "split":
        return _classes_problem(task.classes)
    if task.kind == "stream-chunk" and not 0 <= task.chunk < task.chunks:
        return f"chunk must be in 0..{task.chunks - 1} for chunks = {task.chunks}, got {task.chunk}"
    return None


def _classes_problem(classes: list[int]) -> str | None:
    if not classes:
        return "classes must name at least one class"
    if any(not 0 <= c < N_CLASSES for c in classes):
        return f"classes must be in 0..{N_CLASSES - 1}, got {classes}"
    if len(set(classes)) != len(classes):
        return f"classes must not repeat, got {classes}"
    return None


def load_task(task: TaskConfig, data_dir: str | None, validation_size: int,
              with_test: bool = True) -> TaskData:
    """The data of one task, as its kind builds it (without test images if not ``with_test``)."""
    source = load_source(task.dataset, data_dir, validation_size, with_test)
    return TASK_KINDS[task.kind].build(task, source)


def expected_train_images(task: TaskConfig, available: int) -> int:
    """Training images of ``task`` from the size of its data set's training part, without
    reading it (for progress bars): exact except for 'split', where classes are taken as
    equally frequent (Fashion-MNIST's are; MNIST's are within 13 % of that)."""
    n = available if task.train_limit is None else min(available, task.train_limit)
    if task.kind == "split":
        return n * len(task.classes) // N_CLASSES
    if task.kind == "stream-chunk":
        start, end = chunk_bounds(n, task.chunk, task.chunks)
        return end - start
    return n


# --------------------------------------------------------------------------- sequences


def _common(seq: SequenceConfig) -> dict[str, Any]:
    fields = {"dataset": seq.dataset, "epochs": seq.epochs}
    for name in ("train_limit", "test_limit"):
        if getattr(seq, name) is not None:
            fields[name] = getattr(seq, name)
    return fields


def permuted_sequence(seq: SequenceConfig) -> list[dict[str, Any]]:
    """N permuted tasks, permutation k from seed ``seq.seed + k``; the first may be unpermuted."""
    tasks = []
    for k in range(seq.n_tasks):
        if k == 0 and seq.first_identity:
            tasks.append({"name": "p1", "kind": "dataset", **_common(seq)})
        else:
            tasks.append({"name": f"p{k + 1}", "kind": "permuted", "seed": seq.seed + k, **_common(seq)})
    return tasks


def split_classes(n_tasks: int) -> list[list[int]]:
    """Classes 0..9 in order, cut into ``n_tasks`` equal groups (n_tasks must divide 10)."""
    per_task = N_CLASSES // n_tasks
    return [list(range(k * per_task, (k + 1) * per_task)) for k in range(n_tasks)]


def split_sequence(seq: SequenceConfig) -> list[dict[str, Any]]:
    """The ten classes cut into N equal groups in order: N = 5 gives split MNIST's 0/1, 2/3, ..."""
    tasks = []
    for classes in split_classes(seq.n_tasks):
        name = "c" + "".join(str(c) for c in classes)
        entry = {"name": name, "kind": "split", "classes": classes, **_common(seq)}
        if seq.relabel:
            entry["relabel"] = True
        tasks.append(entry)
    return tasks


def stream_sequence(seq: SequenceConfig) -> list[dict[str, Any]]:
    """The training set shuffled once (seed ``seq.seed``) and cut into N chunks."""
    return [
        {"name": f"s{k + 1}", "kind": "stream-chunk", "seed": seq.seed, "chunk": k,
         "chunks": seq.n_tasks, **_common(seq)}
        for k in range(seq.n_tasks)
    ]


SEQUENCE_KINDS: dict[str, Callable[[Any], list[dict[str, Any]]]] = {
    "permuted": permuted_sequence,
    "split": split_sequence,
    "stream": stream_sequence,
}
"""Sequence kind -> generator of the task entries (plain dicts, validated as TaskConfig)."""
