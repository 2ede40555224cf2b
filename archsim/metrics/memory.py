"""Memory footprint of a metaplastic network on chip, and its ratio to the BNN design.

Bits are counted as the paper counts them (D'Agostino et al. 2023, after Laborieux et al.
2021): every weight has a quantized copy in memristor cells (log2 L bits of information,
held by ``cells_per_weight`` physical devices) and a hidden copy in the digital unit's SRAM
(``hidden_bits``). Batch-norm parameters and activation buffers are added; the optimizer's
moments (Adam: 2 x 32 bits per weight) are reported separately and in
``total_with_optimizer``, because the paper's arithmetic leaves them out while a chip that
trains must hold them.

The BNN design compared against is *measured* when ``results/memory-matched.csv`` exists
(the smallest ``bnn-meta`` network of the size sweeps reaching the paper's pair on the
validation split, docs/memory.md); otherwise it is *assumed*: Laborieux et al.'s published
784-4096-4096-10, never trained under archsim's protocol.
"""

from __future__ import annotations

import csv
import math
from dataclasses import asdict, dataclass
from pathlib import Path

INPUT_PIXELS = 784  # values per input image (28 x 28)
BNN_REFERENCE_SIZES = (784, 4096, 4096, 10)
"""Laborieux et al. 2021, MNIST -> Fashion-MNIST network (public code, MIT)."""

BNN_HIDDEN_BITS = 32
"""Laborieux et al. 2021 keep float32 hidden weights."""

MATCHED_CSV = Path(__file__).resolve().parent.parent / "presets" / "results" / "memory-matched.csv"
"""Written by ``archsim table memory`` from sweeps/memory-matched-*.yaml (results/ in the repo)."""

PAPER_SAVING = 15.0
"""D'Agostino et al. 2023: the QNN needs 15x less memory than the BNN design."""


@dataclass(frozen=True)
class MemoryFootprint:
    """Bits held by one network on chip."""

    weights: int
    rram_cells: int
    rram: int
    dpu: int
    batchnorm: int
    buffers: int
    optimizer_state: int
    total: int

    @property
    def total_with_optimizer(self) -> int:
        return self.total + self.optimizer_state

    def as_dict(self) -> dict[str, int]:
        return {**asdict(self), "total_with_optimizer": self.total_with_optimizer}


def weight_count(sizes: tuple[int, ...]) -> int:
    return sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


def footprint(sizes: tuple[int, ...], levels: int, hidden_bits: int, **options: int | None) -> MemoryFootprint:
    """Footprint of an MLP with ``sizes`` stored as ``levels``-level devices (``options``:
    those of :func:`footprint_of`).

    rram = weights * log2(levels) bits of information in ``weights * cells_per_weight``
    devices; dpu = weights * hidden_bits; batch-norm = 2 parameters per neuron at ``bn_bits``;
    buffers default to one image's activations at every layer boundary (32-bit).
    """
    return footprint_of(weight_count(sizes), sum(sizes[1:]), sum(sizes), levels, hidden_bits, **options)


def footprint_of(
    weights: int,
    bn_channels: int,
    activations: int,
    levels: int,
    hidden_bits: int,
    cells_per_weight: int = 1,
    buffer_bits: int | None = None,
    bn_bits: int = 32,
    optimizer_bits_per_weight: int = 64,
) -> MemoryFootprint:
    """:func:`footprint` from counts: ``bn_channels`` neurons or conv channels with a
    batch-norm, ``activations`` values per image at the layer boundaries (input included)."""
    rram = int(math.ceil(weights * math.log2(levels)))
    dpu = weights * hidden_bits
    batchnorm = 2 * bn_channels * bn_bits
    buffers = activations * 32 if buffer_bits is None else buffer_bits
    return MemoryFootprint(
        weights=weights,
        rram_cells=weights * cells_per_weight,
        rram=rram,
        dpu=dpu,
        batchnorm=batchnorm,
        buffers=buffers,
        optimizer_state=weights * optimizer_bits_per_weight,
        total=rram + dpu + batchnorm + buffers,
    )


def model_footprint(model, levels: int, hidden_bits: int, cells_per_weight: int = 1) -> MemoryFootprint:
    """:func:`footprint_of` the network of a ModelConfig (MLP or CNN)."""
    plan = model.plan
    weights = sum(layer.weights for layer in plan)
    activations = INPUT_PIXELS + sum(layer.n_out * layer.positions for layer in plan)
    return footprint_of(weights, sum(layer.n_out for layer in plan), activations, levels, hidden_bits,
                        cells_per_weight)


def bnn_reference_footprint(sizes: tuple[int, ...] = BNN_REFERENCE_SIZES) -> MemoryFootprint:
    """The BNN metaplasticity design: 1-bit devices, float32 hidden weights."""
    return footprint(sizes, levels=2, hidden_bits=BNN_HIDDEN_BITS)


def paper_formula_bits(sizes: tuple[int, ...], device_bits: float, hidden_bits: int) -> int:
    """The paper's arithmetic: weights * (device bits + hidden bits), nothing else."""
    return int(round(weight_count(sizes) * (device_bits + hidden_bits)))


def hidden_bits_of(config) -> int:
    """Hidden-weight precision of a run, the one its learning uses: the fixed-point width
    (learning.hidden_weight_bits, or the DPU's hidden_precision), 32 for float32."""
    bits = getattr(config, "hidden_weight_bits", None)
    return 32 if bits is None else int(bits)


@dataclass(frozen=True)
class MatchedNetwork:
    """One row of results/memory-matched.csv: a network and its validation accuracy."""

    rule: str
    levels: int
    hidden: tuple[int, ...]
    val_mnist_after_fashion: float
    val_fashion_after_fashion: float
    reaches_pair: bool
    command: str
    m_star: float | None = None
    """The metaplasticity strength the row was trained at (m* for qnn-meta, m for bnn-meta)."""

    @property
    def sizes(self) -> tuple[int, ...]:
        return (784, *self.hidden, 10)

    @property
    def name(self) -> str:
        return "-".join(str(n) for n in self.sizes)

    def footprint(self) -> MemoryFootprint:
        return footprint(self.sizes, self.levels, 32, cells_per_weight=2)


def read_matched(path: Path | None = None) -> list[MatchedNetwork]:
    """Rows of the measured size sweep (default MATCHED_CSV); empty if not produced yet."""
    path = MATCHED_CSV if path is None else path
    if not path.is_file():
        return []
    with path.open(newline="") as handle:
        return [
            MatchedNetwork(
                rule=row["rule"], levels=int(row["levels"]),
                hidden=tuple(int(h) for h in row["hidden"].split("-")),
                val_mnist_after_fashion=float(row["val_mnist_after_fashion"]),
                val_fashion_after_fashion=float(row["val_fashion_after_fashion"]),
                reaches_pair=row["reaches_pair"].strip().lower() == "true",
                command=row["command"],
                m_star=float(row["m_star"]) if row.get("m_star") not in (None, "") else None,
            )
            for row in csv.DictReader(handle)
        ]


def smallest_reaching(rows: list[MatchedNetwork], rule: str) -> MatchedNetwork | None:
    """The network of ``rule`` with the fewest weights that reaches the pair on validation."""
    passing = [r for r in rows if r.rule == rule and r.reaches_pair]
    return min(passing, key=lambda r: weight_count(r.sizes), default=None)


def bnn_comparison(rows: list[MatchedNetwork] | None = None) -> tuple[tuple[int, ...], str]:
    """Sizes of the BNN compared against, and where they come from (measured or assumed)."""
    rows = read_matched() if rows is None else rows
    measured = smallest_reaching(rows, "bnn-meta")
    if measured is not None:
        return measured.sizes, f"measured: smallest bnn-meta reaching the pair on validation ({MATCHED_CSV.name})"
    if rows:
        return BNN_REFERENCE_SIZES, ("assumed: no bnn-meta size in memory-matched.csv reaches the pair on "
                                     "validation; Laborieux et al. 2021's 784-4096-4096-10")
    return BNN_REFERENCE_SIZES, ("assumed, not measured: Laborieux et al. 2021's 784-4096-4096-10 (their "
                                 "50-epoch run), never trained under archsim's protocol")


def cells_per_weight_of(config) -> int:
    hardware = getattr(config, "hardware", None)
    if hardware is None:
        return 2  # differential pair, the default mapping of the device model
    return 2 if hardware.device.mapping == "differential" else 1


def device_bits_of(config) -> float:
    """Information per stored weight: log2(L), or 32 for the unquantized float32 rule."""
    return 32.0 if config.learning.rule == "float32" else math.log2(config.model.levels)


def memory_section(config) -> dict[str, float | int | str]:
    """``memory_bits`` of the run summary: the footprint and its saving against the BNN design.

    The float32 rule has no devices: its 32-bit weights are counted as SRAM-held weights
    with no separate hidden copy.
    """
    quantized = config.learning.rule != "float32"
    hidden_bits = hidden_bits_of(config) if quantized else 0
    if quantized:
        mine = model_footprint(config.model, config.model.levels, hidden_bits, cells_per_weight_of(config))
    else:
        mine = model_footprint(config.model, 2**32, 0, cells_per_weight=0)
    bnn_sizes, bnn_source = bnn_comparison()
    bnn = bnn_reference_footprint(bnn_sizes)
    paper = int(round(mine.weights * (device_bits_of(config) + hidden_bits)))
    paper_bnn = paper_formula_bits(bnn_sizes, 1, BNN_HIDDEN_BITS)
    bnn_name = "-".join(str(n) for n in bnn_sizes)
    return {
        **mine.as_dict(),
        "hidden_bits": hidden_bits,
        "bnn_network": bnn_name,
        "bnn_source": bnn_source,
        "bnn_equivalent": bnn.total,
        "bnn_equivalent_with_optimizer": bnn.total_with_optimizer,
        "saving_vs_bnn": round(bnn.total / mine.total, 4),
        "saving_vs_bnn_with_optimizer": round(bnn.total_with_optimizer / mine.total_with_optimizer, 4),
        "paper_formula": paper,
        "paper_formula_bnn": paper_bnn,
        "paper_formula_saving": round(paper_bnn / paper, 4),
        "formula": "weights x (log2(L) + hidden_bits) + 2 x neurons x 32 (batch-norm) + "
        f"activations x 32 (buffers); BNN: {bnn_name} x (1 + 32) + same extras; "
        "with optimizer: + weights x 64 (Adam's two moments) on both sides",
    }


def format_memory_table(config, section: dict) -> str:
    """The footprint as a text table with its formula (for ``archsim memory``), then the
    matched-accuracy comparison (measured) or a plain statement that the BNN is assumed."""
    sizes = config.model.describe()
    device_bits = device_bits_of(config)
    rows = [
        ("weights", section["weights"], f"network {sizes}"),
        ("memristor cells", section["rram_cells"], "devices holding the weights"),
        ("rram", section["rram"], f"weights x log2(L) = weights x {device_bits:.3g}"),
        ("dpu (hidden)", section["dpu"], f"weights x {section['hidden_bits']}-bit hidden weights"),
        ("batch-norm", section["batchnorm"], "2 parameters x neurons x 32 bit"),
        ("buffers", section["buffers"], "one image's activations x 32 bit"),
        ("total", section["total"], "rram + dpu + batch-norm + buffers"),
        ("optimizer", section["optimizer_state"], "Adam's 2 moments x 32 bit x weights"),
        ("total + optim.", section["total_with_optimizer"], "what a chip that trains holds"),
        ("bnn_equivalent", section["bnn_equivalent"], f"BNN {section['bnn_network']}, 1-bit devices + 32-bit hidden"),
        ("bnn + optim.", section["bnn_equivalent_with_optimizer"], "the same BNN with Adam's moments"),
    ]
    lines = [f"memory footprint of '{config.name}' ({config.learning.rule}, L = {config.model.levels})", ""]
    for name, value, note in rows:
        if name in ("weights", "memristor cells"):
            lines.append(f"  {name:<16}{value:>14,d} {'':>19}   {note}")
        else:
            lines.append(f"  {name:<16}{value:>14,d} bits {value / 8 / 2**20:9.2f} MiB   {note}")
    lines += [
        "",
        f"  BNN size {section['bnn_source']}",
        f"  saving vs BNN   {section['saving_vs_bnn']:.2f}x without optimizer state, "
        f"{section['saving_vs_bnn_with_optimizer']:.2f}x with it (paper: {PAPER_SAVING:g}x)",
        f"  paper's formula weights x (device bits + hidden bits): {section['paper_formula']:,d} vs "
        f"{section['paper_formula_bnn']:,d} bits -> {section['paper_formula_saving']:.2f}x",
    ]
    return "\n".join(lines + [""] + matched_comparison_lines())


def matched_comparison_lines(rows: list[MatchedNetwork] | None = None) -> list[str]:
    """Both networks of the matched-accuracy comparison, or why there is none yet."""
    rows = read_matched() if rows is None else rows
    if not rows:
        return [
            "  matched accuracy: not measured yet. The BNN size above is assumed (Laborieux et al.'s),",
            "  not trained under archsim's protocol; run sweeps/memory-matched-qnn.yaml and",
            "  sweeps/memory-matched-bnn.yaml, then `archsim table memory ... --out results/memory-matched.csv`.",
        ]
    qnn, bnn = smallest_reaching(rows, "qnn-meta"), smallest_reaching(rows, "bnn-meta")
    lines = ["  matched accuracy (measured, validation split; smallest network reaching the pair):"]
    for label, net in (("QNN", qnn), ("BNN", bnn)):
        if net is None:
            lines.append(f"    {label}: no size in {MATCHED_CSV.name} reaches the pair on validation")
            continue
        fp = net.footprint()
        strength = "" if net.m_star is None else f", m* = {net.m_star:g}"
        lines.append(
            f"    {label} {net.rule} {net.name} (L = {net.levels}{strength}): {fp.total:,d} bits, "
            f"{fp.total_with_optimizer:,d} with optimizer; validation {net.val_mnist_after_fashion:.2f} / "
            f"{net.val_fashion_after_fashion:.2f}"
        )
    if qnn is not None and bnn is not None:
        q, b = qnn.footprint(), bnn.footprint()
        ratio, ratio_opt = b.total / q.total, b.total_with_optimizer / q.total_with_optimizer
        verdict = "reached" if ratio >= PAPER_SAVING else f"short by a factor {PAPER_SAVING / ratio:.2f}"
        lines.append(
            f"    measured saving {ratio:.2f}x ({ratio_opt:.2f}x with optimizer state) against the paper's "
            f"{PAPER_SAVING:g}x ({verdict})"
        )
        if ratio < 1:
            lines.append(f"    no saving: at matched accuracy the QNN holds {1 / ratio:.2f}x the BNN's bits "
                         f"({1 / ratio_opt:.2f}x with optimizer state)")
    return lines
