"""Workload description: the tasks, the network and how it learns.

Every field is typed and documented with its unit and meaning; unknown keys are rejected.
A workload YAML holds these fields at its top level; the hardware description is merged in
under ``hardware`` (see :mod:`archsim.config.hardware`).
"""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field, field_validator, model_validator

from archsim.config.base import StrictModel, check_float32
from archsim.config.layers import (
    LayerListError,
    LayerSpec,
    WeightedLayer,
    build_plan,
    describe_plan,
    mlp_layers,
)
from archsim.data.tasks import SEQUENCE_KINDS, task_problem

DatasetName = Literal["mnist", "fashion-mnist"]
RuleName = Literal["qnn-meta", "bnn-meta", "float32"]


class TaskConfig(StrictModel):
    """One task of a continual-learning sequence: a dataset trained for some epochs."""

    name: str = Field(min_length=1, description="Label used in reports (e.g. 'mnist').")
    dataset: DatasetName = Field(description="Dataset of the task: 'mnist' or 'fashion-mnist'.")
    epochs: int = Field(ge=1, le=1000, description="Passes over the training set for this task.")
    train_limit: int | None = Field(
        default=None,
        ge=1,
        description="Use only the first N training images (after the validation hold-out); "
        "None uses all. For quick runs and tests.",
    )
    test_limit: int | None = Field(
        default=None, ge=1, description="Evaluate on the first N test images; None uses all 10 000."
    )
    kind: str = Field(
        default="dataset",
        description="What the task is made of (archsim/data/tasks.py): 'dataset' (the whole "
        "data set), 'permuted' (pixels permuted, needs seed), 'split' (only some classes, needs "
        "classes), 'stream-chunk' (chunk of a once-shuffled stream, needs seed, chunk, chunks).",
    )
    seed: int | None = Field(
        default=None, ge=0, lt=2**63,
        description="'permuted': seed of the pixel permutation; 'stream-chunk': seed of the "
        "stream's one-time shuffle (the same for every chunk of a stream).",
    )
    classes: list[int] | None = Field(default=None, description="'split': the classes of the task, 0..9.")
    relabel: bool = Field(
        default=False,
        description="'split': number the task's classes 0, 1, ... (domain-incremental) instead "
        "of keeping their global labels (class-incremental).",
    )
    chunk: int | None = Field(default=None, ge=0, description="'stream-chunk': which chunk, 0-based.")
    chunks: int | None = Field(
        default=None, ge=1, le=60000, description="'stream-chunk': how many equal chunks the stream is cut into."
    )

    @model_validator(mode="after")
    def _kind_fields(self) -> "TaskConfig":
        problem = task_problem(self)
        if problem is not None:
            raise ValueError(problem)
        return self


class SequenceConfig(StrictModel):
    """A generated sequence of N tasks of one kind (shorthand for a long ``tasks:`` list)."""

    kind: Literal["permuted", "split", "stream"] = Field(
        description="'permuted': N pixel permutations of the data set; 'split': the ten "
        "classes cut into N equal groups; 'stream': the training set cut into N chunks."
    )
    dataset: DatasetName = Field(description="Data set of every task.")
    n_tasks: int = Field(ge=1, le=1000, description="Number of tasks (chunks for a stream).")
    epochs: int = Field(ge=1, le=1000, description="Epochs per task.")
    seed: int = Field(
        default=0, ge=0, lt=2**62,
        description="'permuted': task k uses permutation seed + k; 'stream': seed of the shuffle.",
    )
    first_identity: bool = Field(
        default=False,
        description="'permuted': the first task is the unpermuted data set (Laborieux et al. "
        "2021's code permutes every task, the first included).",
    )
    relabel: bool = Field(default=False, description="'split': see TaskConfig.relabel.")
    train_limit: int | None = Field(
        default=None, ge=1,
        description="Per task as TaskConfig.train_limit; for a stream, the whole stream before cutting.",
    )
    test_limit: int | None = Field(default=None, ge=1, description="Per task as TaskConfig.test_limit.")

    @model_validator(mode="after")
    def _consistent(self) -> "SequenceConfig":
        if self.kind == "split" and 10 % self.n_tasks:
            raise ValueError(f"a split sequence cuts the 10 classes into equal groups: n_tasks "
                             f"must be 1, 2, 5 or 10, got {self.n_tasks}")
        if self.first_identity and self.kind != "permuted":
            raise ValueError("first_identity is for a 'permuted' sequence only; remove it")
        if self.relabel and self.kind != "split":
            raise ValueError("relabel is for a 'split' sequence only; remove it")
        return self

    def tasks(self) -> list[TaskConfig]:
        return [TaskConfig(**entry) for entry in SEQUENCE_KINDS[self.kind](self)]


INPUT_SHAPE = (1, 28, 28)  # channels x height x width of MNIST / Fashion-MNIST
N_CLASSES = 10


class ModelConfig(StrictModel):
    """The network: 1x28x28 inputs, dense or convolutional layers, 10 outputs, no biases.

    Every weighted layer (dense or conv2d) is followed by batch normalisation (batch
    statistics, trained affine scale and shift; per channel for a convolution, as
    BatchNorm2d); hidden layers use sign activations with a straight-through estimator, as in
    Laborieux et al., Nat. Commun. 12, 2549 (2021). Give ``hidden`` (an MLP) or ``layers``.
    """

    hidden: list[int] | None = Field(
        default=None, min_length=1,
        description="Sizes of the hidden layers of an MLP, e.g. [1024] for 784-1024-10 "
        "(shorthand for a layer list of dense layers).",
    )
    layers: list[LayerSpec] | None = Field(
        default=None, min_length=1,
        description="The network as a layer list, input to output: conv2d (out_channels, "
        "kernel, stride, padding, replicas), pool2d (kind max/avg, kernel) and dense (units); "
        "flattened before the first dense layer, the last is dense with 10 units "
        "(archsim/config/layers.py).",
    )
    levels: int = Field(
        default=3,
        ge=2,
        le=256,
        description="Number of quantized weight levels L (2 = binary). Ignored by 'float32'.",
    )
    level_values: list[float] | None = Field(
        default=None,
        description="Explicit, strictly increasing level values (length = levels). None gives "
        "the uniform symmetric set -1 + k*2/(L-1), k = 0..L-1.",
    )

    @property
    def plan(self) -> tuple[WeightedLayer, ...]:
        """The weighted layers with their shapes chained from the input: the one definition
        the learner, the mapping and the architecture all use."""
        layers = self.layers if self.layers is not None else mlp_layers(self.hidden or [], N_CLASSES)
        return build_plan(layers, INPUT_SHAPE, N_CLASSES)

    @property
    def is_mlp(self) -> bool:
        return all(not layer.is_conv for layer in self.plan)

    @property
    def layer_sizes(self) -> tuple[int, ...]:
        """Neurons per layer of an MLP, input to output: (784, *hidden, 10)."""
        plan = self.plan
        if not self.is_mlp:
            raise ValueError("layer_sizes is defined for an MLP only; use plan for a CNN")
        return (plan[0].n_in, *(layer.n_out for layer in plan))

    def describe(self) -> str:
        """Short name of the network, e.g. 784-1024-10 or 1x28x28-conv3x3x8p1-maxpool2-10."""
        return describe_plan(self.plan)

    init_width: float = Field(
        default=0.1,
        gt=0,
        description="Total width of the uniform initial distribution of the hidden weights: "
        "U(-init_width/2, +init_width/2), in level units. This is the meaning of "
        "Laborieux et al. 2021's --init-width (models_utils.py: uniform_(a=-width/2, "
        "b=width/2); their default 0.1).",
    )
    bn_eps: float = Field(default=1e-5, gt=0, description="Batch-norm variance floor.")
    bn_affine: Literal["all", "output", "none"] = Field(
        default="all",
        description="Which batch-norm layers learn a scale and shift: every layer, only the "
        "output layer, or none (fixed unit scale, zero shift). Un-attenuated batch-norm "
        "parameters are shared by all tasks, so each one trained is a path for forgetting.",
    )
    bn_per_task: bool = Field(
        default=False,
        description="Task-dependent batch-norm: keep each task's batch-norm scale and shift "
        "(2 x neurons x 32 bit per task in the DPU) and evaluate each task with its own, as "
        "Laborieux et al. 2021's code does ('task' scenario). The weights stay shared. "
        "False evaluates every task with the current parameters (domain-incremental).",
    )
    batchnorm_eval: Literal["batch", "running"] = Field(
        default="batch",
        description="Statistics batch-norm uses at evaluation: 'batch' = those of each "
        "evaluation batch (eval_batch_size images, as Laborieux et al.'s MLP code); "
        "'running' = running mean and variance stored during training (momentum 0.1, "
        "unbiased variance, as torch.nn.BatchNorm1d), so each image is classified on its "
        "own, as a chip does. Per task with bn_per_task.",
    )
    activation: Literal["sign", "tanh"] = Field(
        default="sign",
        description="Hidden activation: 'sign' (binary, straight-through estimator) or 'tanh' "
        "(smooth, for gradient checks and float baselines).",
    )

    @field_validator("hidden")
    @classmethod
    def _positive_sizes(cls, sizes: list[int] | None) -> list[int] | None:
        for size in sizes or []:
            if size < 1:
                raise ValueError(f"hidden layer size must be >= 1, got {size}")
        return sizes

    @model_validator(mode="after")
    def _one_network(self) -> "ModelConfig":
        if (self.hidden is None) == (self.layers is None):
            raise ValueError("give either model.hidden (an MLP) or model.layers (a layer list), "
                             f"{'not both' if self.hidden is not None else 'one of them'}")
        try:
            self.plan
        except LayerListError as exc:
            raise ValueError(str(exc)) from None
        return self

    @model_validator(mode="after")
    def _levels_consistent(self) -> "ModelConfig":
        if self.level_values is not None:
            values = self.level_values
            if len(values) != self.levels:
                raise ValueError(
                    f"level_values has {len(values)} entries but levels = {self.levels}; "
                    "give one value per level"
                )
            if any(not math.isfinite(v) for v in values):
                raise ValueError("level_values must be finite numbers")
            if any(b <= a for a, b in zip(values, values[1:])):
                raise ValueError("level_values must be strictly increasing")
            check_float32(values, "level_values", increasing=True)
        return self


class AdamConfig(StrictModel):
    """Adam on the hidden weights (Kingma & Ba 2015), as used by Laborieux et al. 2021."""

    lr: float = Field(default=0.005, gt=0, le=10, description="Learning rate (hidden-weight units per step).")
    beta1: float = Field(default=0.9, ge=0, lt=1, description="First-moment decay.")
    beta2: float = Field(default=0.999, ge=0, lt=1, description="Second-moment decay.")
    eps: float = Field(default=1e-8, gt=0, description="Denominator floor.")
    weight_decay: float = Field(
        default=1e-7,
        ge=0,
        description="L2 coefficient added to the gradient before Adam's moments (Laborieux: "
        "1e-7). Under Adam it pulls weights whose gradient is below weight_decay*|W_H| back "
        "towards zero at up to lr per step (attenuated by the meta-function like any "
        "shrinking step), which stops noise-driven outward drift; see docs/learning-rules.md.",
    )
    decoupled_weight_decay: float = Field(
        default=0.0,
        ge=0,
        le=100,
        description="AdamW-style decay of the hidden weights (dimensionless, per unit lr): "
        "each step shrinks W_H by lr*decoupled_weight_decay*W_H, damped by the meta-function. "
        "Unlike weight_decay it is not normalised by Adam, so it never pushes a weight across "
        "zero (fewer device writes). Batch-norm parameters are not decayed.",
    )
    lr_decay: Literal["none", "cosine"] = Field(
        default="none",
        description="Learning-rate schedule within each task: constant, or cosine from lr to "
        "lr_final_fraction*lr over the task's epochs.",
    )
    lr_final_fraction: float = Field(
        default=0.0, ge=0, le=1, description="Final learning rate of the cosine schedule, as a fraction of lr."
    )
    reset_between_tasks: bool = Field(
        default=True,
        description="Zero Adam's moments and step count at the start of every task, as "
        "Laborieux et al.'s main.py does by building a new Adam_meta per task.",
    )


class LearningConfig(StrictModel):
    """The learning rule and its optimizer."""

    rule: RuleName = Field(
        default="qnn-meta",
        description="'qnn-meta' (metaplastic QNN, docs/learning-rules.md), 'bnn-meta' "
        "(Laborieux 2021, two levels), 'float32' (unquantized baseline).",
    )
    m_star: float = Field(
        default=3.0,
        ge=0,
        le=100,
        description="Metaplasticity strength m* (dimensionless). 0 = plain straight-through "
        "training (no consolidation). For 'bnn-meta' this is Laborieux's m.",
    )
    hidden_clip: float | None = Field(
        default=None,
        gt=0,
        description="Bound on |W_H| in hidden-weight units, None for unbounded. Caps "
        "consolidation, hence sets a floor on the attenuation factor.",
    )
    hidden_weight_bits: int | None = Field(
        default=None,
        ge=2,
        le=64,
        description="Fixed-point width of the hidden weights held by the DPU, in bits (sign "
        "included), applied after every update: W_H is rounded to a multiple of "
        "2*hidden_weight_range/2**bits and saturated at +-hidden_weight_range. None keeps "
        "float32, or with hardware follows hardware.dpu.hidden_precision (if both are set "
        "they must agree).",
    )
    hidden_weight_range: float = Field(
        default=2.0,
        gt=0,
        le=1024,
        description="Largest |W_H| of the fixed-point hidden weights (level units); only used "
        "with hidden_weight_bits.",
    )
    hidden_rounding: Literal["nearest", "stochastic"] = Field(
        default="nearest",
        description="Rounding of the fixed-point hidden weights: to the nearest step, or "
        "stochastic (up with probability equal to the remainder; seeded generator).",
    )
    batch_size: int = Field(default=100, ge=1, le=60000, description="Mini-batch size (images).")
    optimizer: AdamConfig = Field(default_factory=AdamConfig)

    @model_validator(mode="after")
    def _finite(self) -> "LearningConfig":
        if not math.isfinite(self.m_star):
            raise ValueError("m_star must be a finite number")
        return self


class DataConfig(StrictModel):
    """Where the datasets are and how inputs are prepared."""

    data_dir: str | None = Field(
        default=None,
        description="Folder holding mnist/ and fashion-mnist/ IDX files; None searches "
        "$ARCHSIM_DATA, ../shared/datasets, /usr/share/datasets and the user cache.",
    )
    validation_size: int = Field(
        default=5000,
        ge=0,
        le=30000,
        description="Last N training images of each dataset held out for validation (never trained on).",
    )
    evaluate_test: bool = Field(
        default=True,
        description="Evaluate the test sets. False never reads or scores a test image: the "
        "summary then has validation accuracy only (for choosing settings, docs/learning-rules.md).",
    )


class WorkloadConfig(StrictModel):
    """A continual-learning experiment: tasks in order, the network and its learning rule."""

    name: str = Field(default="workload", min_length=1, description="Name used in reports.")
    description: str = Field(default="", description="Free text shown in reports.")
    tasks: list[TaskConfig] = Field(
        default_factory=list,
        description="Tasks trained one after the other (or give 'sequence' to generate them).",
    )
    sequence: SequenceConfig | None = Field(
        default=None,
        description="Generate 'tasks' as N tasks of one kind (permuted, split, stream); "
        "expanded at load, so the written config.yaml lists the tasks and this is null.",
    )
    evaluate_unseen_tasks: bool = Field(
        default=False,
        description="After each task also evaluate the tasks not trained yet, so the accuracy "
        "matrix is N x N as GEM's R (Lopez-Paz & Ranzato, NeurIPS 2017); False evaluates "
        "only the tasks seen so far (lower triangle).",
    )
    model: ModelConfig
    learning: LearningConfig = Field(default_factory=LearningConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    eval_batch_size: int = Field(
        default=1000,
        ge=2,
        le=10000,
        description="Images per evaluation batch; batch-norm uses the statistics of each batch.",
    )
    software_baseline: bool = Field(
        default=False,
        description="Also train the same network without hardware effects and report its "
        "accuracy matrix under 'baseline' (the paper's software reference).",
    )

    @model_validator(mode="after")
    def _expand_sequence(self) -> "WorkloadConfig":
        if self.sequence is not None:
            if self.tasks:
                raise ValueError("give either 'tasks' or 'sequence', not both")
            # Frozen model: the expansion is part of validation, so write the fields directly.
            self.__dict__.update(tasks=self.sequence.tasks(), sequence=None)
            self.__pydantic_fields_set__.add("tasks")
        if not self.tasks:
            raise ValueError("no tasks: give 'tasks' (a list) or 'sequence' (N generated tasks)")
        return self

    @model_validator(mode="after")
    def _boundary_free_stream(self) -> "WorkloadConfig":
        if any(t.kind == "stream-chunk" for t in self.tasks):
            if self.model.bn_per_task:
                raise ValueError("a stream has no task boundaries: set model.bn_per_task: false")
            if self.learning.optimizer.reset_between_tasks:
                raise ValueError("a stream has no task boundaries: set "
                                 "learning.optimizer.reset_between_tasks: false")
        return self

    @model_validator(mode="after")
    def _unique_task_names(self) -> "WorkloadConfig":
        names = [t.name for t in self.tasks]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"task names must be unique, repeated: {', '.join(duplicated)}")
        if not self.data.evaluate_test and self.data.validation_size == 0:
            raise ValueError(
                "data.evaluate_test is false and data.validation_size is 0: nothing would be "
                "evaluated; hold out validation images (e.g. data.validation_size=5000)"
            )
        if self.learning.rule == "bnn-meta" and self.model.levels != 2:
            raise ValueError(
                "learning.rule 'bnn-meta' needs model.levels = 2 (binary weights); "
                "use 'qnn-meta' for more levels"
            )
        return self
