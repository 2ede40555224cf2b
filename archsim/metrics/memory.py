"""Memory footprint of a metaplastic network on chip, and its ratio to the BNN design.

Bits are counted as the paper counts them (D'Agostino et al. 2023, after Laborieux et al.
2021): every weight has a quantized copy in memristor cells (log2 L bits of information,
held by ``cells_per_weight`` physical devices) and a hidden copy in the digital unit's SRAM
(``hidden_bits``). Batch-norm parameters and activation buffers are added; the optimizer's
moments are reported separately because the paper's arithmetic leaves them out.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

BNN_REFERENCE_SIZES = (784, 4096, 4096, 10)
"""Laborieux et al. 2021, MNIST -> Fashion-MNIST network (public code, MIT)."""

BNN_HIDDEN_BITS = 32
"""Laborieux et al. 2021 keep float32 hidden weights."""


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

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def weight_count(sizes: tuple[int, ...]) -> int:
    return sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


def footprint(
    sizes: tuple[int, ...],
    levels: int,
    hidden_bits: int,
    cells_per_weight: int = 1,
    buffer_bits: int | None = None,
    bn_bits: int = 32,
    optimizer_bits_per_weight: int = 64,
) -> MemoryFootprint:
    """Footprint of an MLP with ``sizes`` stored as ``levels``-level devices.

    rram = weights * log2(levels) bits of information in ``weights * cells_per_weight``
    devices; dpu = weights * hidden_bits; batch-norm = 2 parameters per neuron at ``bn_bits``;
    buffers default to one image's activations at every layer boundary (32-bit).
    """
    weights = weight_count(sizes)
    rram = int(math.ceil(weights * math.log2(levels)))
    dpu = weights * hidden_bits
    batchnorm = 2 * sum(sizes[1:]) * bn_bits
    buffers = sum(sizes) * 32 if buffer_bits is None else buffer_bits
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


def bnn_reference_footprint() -> MemoryFootprint:
    """The BNN metaplasticity design: 784-4096-4096-10, 1-bit devices, float32 hidden weights."""
    return footprint(BNN_REFERENCE_SIZES, levels=2, hidden_bits=BNN_HIDDEN_BITS)


def paper_formula_bits(sizes: tuple[int, ...], device_bits: float, hidden_bits: int) -> int:
    """The paper's arithmetic: weights * (device bits + hidden bits), nothing else."""
    return int(round(weight_count(sizes) * (device_bits + hidden_bits)))


def hidden_bits_of(config) -> int:
    """Hidden-weight precision of a run: the DPU's (float32 = 32 bits), 32 without hardware."""
    hardware = getattr(config, "hardware", None)
    if hardware is None:
        return 32
    precision = hardware.dpu.hidden_precision
    return 32 if precision == "float32" else int(precision)


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
    sizes = (784, *config.model.hidden, 10)
    quantized = config.learning.rule != "float32"
    hidden_bits = hidden_bits_of(config) if quantized else 0
    if quantized:
        mine = footprint(sizes, config.model.levels, hidden_bits, cells_per_weight_of(config))
    else:
        mine = footprint(sizes, 2**32, 0, cells_per_weight=0)
    bnn = bnn_reference_footprint()
    paper = paper_formula_bits(sizes, device_bits_of(config), hidden_bits)
    paper_bnn = paper_formula_bits(BNN_REFERENCE_SIZES, 1, BNN_HIDDEN_BITS)
    return {
        **mine.as_dict(),
        "hidden_bits": hidden_bits,
        "bnn_equivalent": bnn.total,
        "saving_vs_bnn": round(bnn.total / mine.total, 4),
        "paper_formula": paper,
        "paper_formula_bnn": paper_bnn,
        "paper_formula_saving": round(paper_bnn / paper, 4),
        "formula": "weights x (log2(L) + hidden_bits) + 2 x neurons x 32 (batch-norm) + "
        "activations x 32 (buffers); BNN: 784-4096-4096-10 x (1 + 32) + same extras",
    }


def format_memory_table(config, section: dict) -> str:
    """The footprint as a text table with its formula (for ``archsim memory``)."""
    sizes = "-".join(str(n) for n in (784, *config.model.hidden, 10))
    bnn_sizes = "-".join(str(n) for n in BNN_REFERENCE_SIZES)
    device_bits = device_bits_of(config)
    rows = [
        ("weights", section["weights"], f"network {sizes}"),
        ("memristor cells", section["rram_cells"], "devices holding the weights"),
        ("rram", section["rram"], f"weights x log2(L) = weights x {device_bits:.3g}"),
        ("dpu (hidden)", section["dpu"], f"weights x {section['hidden_bits']}-bit hidden weights"),
        ("batch-norm", section["batchnorm"], "2 parameters x neurons x 32 bit"),
        ("buffers", section["buffers"], "one image's activations x 32 bit"),
        ("total", section["total"], "rram + dpu + batch-norm + buffers"),
        ("bnn_equivalent", section["bnn_equivalent"], f"BNN {bnn_sizes}, 1-bit devices + 32-bit hidden"),
    ]
    lines = [f"memory footprint of '{config.name}' ({config.learning.rule}, L = {config.model.levels})", ""]
    for name, value, note in rows:
        if name in ("weights", "memristor cells"):
            lines.append(f"  {name:<16}{value:>14,d} {'':>19}   {note}")
        else:
            lines.append(f"  {name:<16}{value:>14,d} bits {value / 8 / 2**20:9.2f} MiB   {note}")
    lines += [
        "",
        f"  saving vs BNN   {section['saving_vs_bnn']:.2f}x   (bnn_equivalent / total)",
        f"  paper's formula weights x (device bits + hidden bits): {section['paper_formula']:,d} vs "
        f"{section['paper_formula_bnn']:,d} bits -> {section['paper_formula_saving']:.2f}x",
        f"  not counted (as in the paper): Adam moments, {section['optimizer_state']:,d} bits",
    ]
    return "\n".join(lines)
