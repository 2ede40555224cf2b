"""One run: prepare the task data, build the learner, train the tasks in order, evaluate.

This is the functional (accuracy) side of a run. The hardware side (device arrays, SimPy
schedule, ledger) attaches to the learner through its weight store and observer.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from archsim.config import RunConfig
from archsim.config.workload import TaskConfig
from archsim.data.tasks import TaskData, load_task
from archsim.errors import DataError
from archsim.learning.batchnorm import RunningStatistics
from archsim.learning.network import IdealMvm, Mlp, Mvm
from archsim.learning.precision import FixedPointHidden
from archsim.learning.optimizer import Adam
from archsim.learning.storage import FloatStore, QuantizedStore, WeightStore
from archsim.learning.trainer import (
    Learner,
    TrainingObserver,
    cosine_lr_scale,
    make_meta_factor,
    make_quantizer,
)

ProgressCallback = Callable[[str, int], None]


@dataclass(frozen=True)
class EpochEnd:
    """Passed to ``on_epoch_end`` after every training epoch."""

    task: str
    task_index: int
    epoch: int
    """Epoch within the task, from 1."""
    epochs: int
    """Epochs of the task."""
    train_loss: float
    learner: Learner
    """The learner (``learner.store.write_counts()``, ``learner.evaluate(x, y, batch)``)."""


@dataclass(frozen=True)
class TaskEnd:
    """Passed to ``on_task_end`` after a task is trained and every task seen so far evaluated."""

    task: str
    task_index: int
    accuracy: dict[str, float]
    validation_accuracy: dict[str, float]
    learner: Learner


class RunCallback(Protocol):
    """What a run calls back; an object may define either method or both."""

    def on_epoch_end(self, event: EpochEnd) -> None: ...

    def on_task_end(self, event: TaskEnd) -> None: ...


def notify(callbacks: Sequence[Any], method: str, event: Any) -> None:
    for callback in callbacks:
        handler = getattr(callback, method, None)
        if handler is not None:
            handler(event)


def load_task_data(
    task: TaskConfig, data_dir: str | None, validation_size: int, with_test: bool = True
) -> TaskData:
    """The task's training set (after the validation hold-out), validation and test sets.

    ``with_test=False`` never reads the test set (its arrays are empty).
    """
    data = load_task(task, data_dir, validation_size, with_test)
    if data.train_y.shape[0] == 0 or (with_test and data.test_y.shape[0] == 0):
        raise DataError(f"task '{task.name}' has no {'training' if data.train_y.shape[0] == 0 else 'test'} "
                        "images (classes, chunk or limits leave none); change the task")
    return data


@dataclass
class RunResult:
    """What a run measured; :mod:`archsim.summary` turns it into ``summary.json``."""

    accuracy: dict[str, dict[str, float]]
    validation_accuracy: dict[str, dict[str, float]]
    train_loss: dict[str, list[float]]
    write_counts: list[np.ndarray]
    wall_time_s: dict[str, float] = field(default_factory=dict)
    baseline_accuracy: dict[str, dict[str, float]] | None = None


StoreFactory = Callable[[RunConfig, list[np.ndarray], np.random.Generator], WeightStore]


def ideal_store(config: RunConfig, hidden: list[np.ndarray], rng: np.random.Generator) -> WeightStore:
    """Exact quantized levels (or float weights for the float32 rule): no device effects."""
    quantizer = make_quantizer(config.learning, config.model)
    return FloatStore(hidden) if quantizer is None else QuantizedStore(hidden, quantizer)


def build_learner(
    config: RunConfig,
    init_rng: np.random.Generator,
    device_rng: np.random.Generator,
    store_factory: StoreFactory = ideal_store,
    observer: TrainingObserver | None = None,
    mvm: Mvm | None = None,
    rounding_rng: np.random.Generator | None = None,
) -> Learner:
    """Network, weight store, optimizer and meta-function as the configuration says."""
    net = Mlp.from_plan(
        config.model.plan,
        config.model.init_width,
        init_rng,
        bn_eps=config.model.bn_eps,
        sign_hidden=config.model.activation == "sign",
    )
    net.mvm = mvm or IdealMvm()
    if config.model.batchnorm_eval == "running":
        net.bn_stats = RunningStatistics.create(net.sizes)
    rounding = hidden_weight_rounding(config, rounding_rng)
    if rounding is not None:  # the DPU holds the initial weights in its format too
        for hidden in net.hidden:
            rounding(hidden)
    opt_cfg = config.learning.optimizer
    optimizer = Adam(
        lr=opt_cfg.lr,
        beta1=opt_cfg.beta1,
        beta2=opt_cfg.beta2,
        eps=opt_cfg.eps,
        weight_decay=opt_cfg.weight_decay,
    )
    quantizer = make_quantizer(config.learning, config.model)
    return Learner(
        net=net,
        store=store_factory(config, net.hidden, device_rng),
        optimizer=optimizer,
        meta=make_meta_factor(config.learning, quantizer),
        hidden_clip=config.learning.hidden_clip,
        decoupled_decay=opt_cfg.decoupled_weight_decay,
        bn_trainable=bn_trainable(config.model.bn_affine, net.n_layers),
        hidden_rounding=rounding,
        observer=observer or TrainingObserver(),
    )


def hidden_weight_rounding(
    config: RunConfig, rng: np.random.Generator | None
) -> FixedPointHidden | None:
    """The k-bit fixed-point format of the hidden weights, None for float32."""
    learning, bits = config.learning, config.hidden_weight_bits
    if bits is None or learning.rule == "float32":
        return None
    stochastic = learning.hidden_rounding == "stochastic"
    if stochastic and rng is None:
        rng = seed_streams(config.seed)["rounding"]
    return FixedPointHidden(bits, learning.hidden_weight_range, stochastic, rng)


def bn_trainable(mode: str, n_layers: int) -> tuple[bool, ...]:
    """Which layers' batch-norm scale and shift are trained."""
    if mode == "all":
        return (True,) * n_layers
    if mode == "output":
        return (False,) * (n_layers - 1) + (True,)
    return (False,) * n_layers


def lr_schedule_for(config: RunConfig) -> Callable[[float], float]:
    opt = config.learning.optimizer
    if opt.lr_decay == "cosine":
        return lambda progress: cosine_lr_scale(progress, opt.lr_final_fraction)
    return lambda progress: 1.0


def train_sequence(
    config: RunConfig,
    learner: Learner,
    tasks: list[TaskData],
    shuffle_rng: np.random.Generator,
    progress: ProgressCallback | None = None,
    callbacks: Sequence[Any] = (),
) -> tuple[dict, dict, dict, dict]:
    """Train the tasks in order; after each, evaluate every task seen so far.

    With ``model.bn_per_task`` every task is evaluated with the batch-norm scale and shift
    it ended its own training with (task-dependent batch-norm, as Laborieux et al.'s
    continual-learning code does); the weights are shared by all tasks either way.
    """
    accuracy: dict[str, dict[str, float]] = {}
    validation: dict[str, dict[str, float]] = {}
    losses: dict[str, list[float]] = {}
    wall: dict[str, float] = {}
    bn_states: dict[str, tuple[list[np.ndarray], list[np.ndarray]]] = {}
    schedule = lr_schedule_for(config)
    for index, (task_cfg, data) in enumerate(zip(config.tasks, tasks)):
        if index > 0 and config.learning.optimizer.reset_between_tasks:
            learner.optimizer.reset()
        start = time.perf_counter()
        on_batch = (lambda n, name=data.name: progress(name, n)) if progress else None
        losses[data.name] = []
        for epoch in range(task_cfg.epochs):  # one epoch per call, for the epoch callbacks
            epoch_schedule = (lambda p, e=epoch, n=task_cfg.epochs: schedule((e + p) / n))
            losses[data.name] += learner.train_epochs(
                data.train_x, data.train_y, 1, config.learning.batch_size, shuffle_rng, epoch_schedule, on_batch
            )
            notify(callbacks, "on_epoch_end", EpochEnd(
                data.name, index, epoch + 1, task_cfg.epochs, losses[data.name][-1], learner))
        wall[f"train:{data.name}"] = time.perf_counter() - start
        key = f"after:{data.name}"
        bn_states[data.name] = learner.net.batch_norm_state()
        current = bn_states[data.name]
        accuracy[key], validation[key] = {}, {}
        for seen in tasks if config.evaluate_unseen_tasks else tasks[: index + 1]:
            if config.model.bn_per_task:  # a task not trained yet uses the current state
                learner.net.load_batch_norm_state(bn_states.get(seen.name, current))
            if seen.test_y.shape[0] > 0:
                accuracy[key][seen.name] = learner.evaluate(seen.test_x, seen.test_y, config.eval_batch_size)
            if seen.val_y.shape[0] > 0:
                validation[key][seen.name] = learner.evaluate(seen.val_x, seen.val_y, config.eval_batch_size)
        learner.net.load_batch_norm_state(current)
        notify(callbacks, "on_task_end", TaskEnd(data.name, index, accuracy[key], validation[key], learner))
    accuracy = {key: row for key, row in accuracy.items() if row}  # empty: test not evaluated
    return accuracy, validation, losses, wall


def seed_streams(seed: int) -> dict[str, np.random.Generator]:
    """Independent generators per purpose, so adding draws to one never shifts another."""
    names = ("init", "shuffle", "device", "rounding")  # append only: earlier streams keep their draws
    children = np.random.SeedSequence(seed).spawn(len(names))
    return {name: np.random.default_rng(child) for name, child in zip(names, children)}


def run_experiment(
    config: RunConfig,
    progress: ProgressCallback | None = None,
    store_factory: StoreFactory = ideal_store,
    observer: TrainingObserver | None = None,
    mvm: Mvm | None = None,
    callbacks: Sequence[Any] = (),
) -> RunResult:
    """Train every task of ``config`` in order and measure the accuracy matrix.

    ``store_factory`` (device model), ``observer`` (architecture engine) and ``mvm``
    (circuit effects on the matrix products) attach the hardware; the defaults are ideal.
    ``callbacks`` (:class:`RunCallback`) are called after every epoch and every task.
    """
    tasks = [
        load_task_data(t, config.data.data_dir, config.data.validation_size, config.data.evaluate_test)
        for t in config.tasks
    ]
    rngs = seed_streams(config.seed)
    learner = build_learner(
        config, rngs["init"], rngs["device"], store_factory, observer, mvm, rngs["rounding"]
    )
    accuracy, validation, losses, wall = train_sequence(
        config, learner, tasks, rngs["shuffle"], progress, callbacks)
    result = RunResult(
        accuracy=accuracy,
        validation_accuracy=validation,
        train_loss=losses,
        write_counts=learner.store.write_counts(),
        wall_time_s=wall,
    )
    if config.software_baseline:
        result.baseline_accuracy = software_baseline(config, tasks, store_factory, mvm, accuracy)
    return result


def software_baseline(
    config: RunConfig,
    tasks: list[TaskData],
    store_factory: StoreFactory,
    mvm: Mvm | None,
    accuracy: dict[str, dict[str, float]],
) -> dict[str, dict[str, float]]:
    """Accuracy matrix of the same network, seed and data without hardware effects.

    The baseline replays the run's own random streams (same initial weights, same batch
    order), so the difference to the run is the hardware alone. A run that already has no
    hardware effects is its own baseline.
    """
    if store_factory is ideal_store and mvm is None:
        return accuracy
    rngs = seed_streams(config.seed)
    baseline = build_learner(config, rngs["init"], rngs["device"], rounding_rng=rngs["rounding"])
    return train_sequence(config, baseline, tasks, rngs["shuffle"])[0]

