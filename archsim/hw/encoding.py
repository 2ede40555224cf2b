"""How a signed weight sits on device columns: the one definition of a tile's column use.

A weight encoding is chosen by name (``hardware.tile.weight_encoding`` or
``device.mapping``) through :data:`WEIGHT_ENCODINGS`. The mapping (how many weight columns a
tile holds), the tile's cost model (cells read per MVM, which ADC senses which output) and
the functional model all ask the encoding; nothing else knows the column layout.

* ``differential``: two columns (G+, G-) per weight, the pair's currents subtracted before
  the ADC (NeuRRAM's differential neurons): C/2 weights per tile, output k on columns 2k and
  2k+1, sensed once.
* ``reference``: one column per weight plus one reference column per tile, each weight
  column's current taken against it: C - 1 weights per tile, output k on column k, the
  reference after the last used weight column.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from archsim.hw.registry import Registry

WEIGHT_ENCODINGS: Registry[type["WeightEncoding"]] = Registry(
    "weight encoding", "hardware.tile.weight_encoding"
)


@dataclass(frozen=True)
class WeightEncoding:
    """Column layout of signed weights on a tile."""

    name: ClassVar[str]
    cols_per_weight: ClassVar[int]
    extra_cols: ClassVar[int]  # columns a tile spends besides its weights (reference)

    def weights_per_tile(self, cols: int) -> int:
        """Weight columns (outputs) a tile of ``cols`` device columns holds."""
        return (cols - self.extra_cols) // self.cols_per_weight

    def physical_cols(self, outputs: int) -> int:
        """Device columns used by ``outputs`` weight columns (with any reference column)."""
        return outputs * self.cols_per_weight + self.extra_cols if outputs else 0

    @property
    def sensed_line_step(self) -> int:
        """Device-column distance between two outputs' sensed columns (for the ADC mux)."""
        return self.cols_per_weight


@WEIGHT_ENCODINGS.register("differential")
@dataclass(frozen=True)
class Differential(WeightEncoding):
    name: ClassVar[str] = "differential"
    cols_per_weight: ClassVar[int] = 2
    extra_cols: ClassVar[int] = 0


@WEIGHT_ENCODINGS.register("reference")
@dataclass(frozen=True)
class Reference(WeightEncoding):
    name: ClassVar[str] = "reference"
    cols_per_weight: ClassVar[int] = 1
    extra_cols: ClassVar[int] = 1


def weight_encoding(name: str) -> WeightEncoding:
    """The encoding registered as ``name`` (ConfigError naming the known ones otherwise)."""
    return WEIGHT_ENCODINGS.get(name)()


__all__ = ["WEIGHT_ENCODINGS", "Differential", "Reference", "WeightEncoding", "weight_encoding"]
