"""DACs (word-line drivers) and ADCs of a tile: each owns its transform and its costs.

* :class:`Dac` quantises the inputs it applies (``quantize``) and costs ``convert`` actions
  (energy per conversion, settling time per slice).
* :class:`Adc` quantises the partial sums it converts (``quantize``: clipping range and
  codes) and costs ``convert`` actions (energy per conversion, conversion time); it also owns
  its column multiplexer (``columns_per_adc`` lines hard-wired to each ADC), which sets how
  many conversions its busiest ADC makes (``conversion_rounds``).

ADC models are chosen by ``hardware.adc.model`` through :data:`ADC_MODELS`; a model is an
:class:`Adc` subclass that says how its conversion energy scales with resolution and what
its conversion time is.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numba
import numpy as np

from archsim.config.hardware import AdcConfig, DacConfig
from archsim.learning.kernels import JIT_OPTIONS, SERIAL_OPTIONS, chunk_bounds, in_halves, kernel_launch, scan_chunks
from archsim.hw.base import Component, ceil_div, cycles
from archsim.hw.registry import Registry

# ISAAC 32 nm SAR ADC energy per conversion (pJ) by resolution, as tabulated in Accelergy's
# hwcomponents-library isaac.py from Kull et al. ISSCC 2013 (8 bit, 1.2 GS/s) scaled with
# Saberi et al. 2011 (capacitive-DAC power vs. resolution).
ISAAC_ADC_PJ = {4: 0.79, 5: 0.99, 6: 1.20, 7: 1.42, 8: 1.67, 9: 1.969078145, 10: 2.379022742}


def adc_resolution_factor(bits: int) -> float:
    """Relative conversion energy of a ``bits`` SAR ADC (1.0 at 8 bits).

    The ISAAC/Saberi table for 4..10 bits; below 4 bits linear in bits (comparator-dominated,
    one decision per bit); above 10 bits x2 per bit (thermal-noise limited; Murmann's ADC
    survey shows energy/conversion ~ 4^ENOB at high resolution, x2 is the conservative end).
    """
    if bits in ISAAC_ADC_PJ:
        return ISAAC_ADC_PJ[bits] / ISAAC_ADC_PJ[8]
    if bits < 4:
        return ISAAC_ADC_PJ[4] * bits / 4 / ISAAC_ADC_PJ[8]
    return ISAAC_ADC_PJ[10] * 2.0 ** (bits - 10) / ISAAC_ADC_PJ[8]


def default_adc_latency_s(bits: int) -> float:
    """NeuroSim SAR: (log2(levels) + 1) steps of 1 ns (``SarADC::CalculateLatency``)."""
    return (bits + 1) * 1e-9


def dac_quantize(x: np.ndarray, bits: int) -> np.ndarray:
    """Quantise inputs to the DAC's resolution (exact for binary inputs).

    Inputs in [0, 1] (layer-0 pixels) take 2^b - 1 uniform steps; inputs in [-1, 1] (tanh
    activations, scaled errors) 2^(b-1) - 1 steps per sign; binary +-1 inputs pass unchanged
    (a sign input is one polarity-driven slice).
    """
    lo = float(x.min()) if x.size else 0.0
    if lo >= 0.0:
        levels = float(2**bits - 1)
        return np.round(np.clip(x, 0.0, 1.0) * levels) / np.float32(levels)
    if _binary(x):
        return x
    levels = float(max(2 ** (bits - 1) - 1, 1))
    return np.round(np.clip(x, -1.0, 1.0) * levels) / np.float32(levels)


def _binary(x: np.ndarray) -> bool:
    """Every |x| exactly 1 (NaN is not): one pass without temporaries for float32."""
    if x.dtype == np.float32 and x.flags.c_contiguous:
        return _all_unit_magnitude(x.reshape(-1))
    return bool(np.all(np.abs(x) == 1.0))


@numba.njit(cache=True, nogil=True)
def _all_unit_magnitude(x: np.ndarray) -> bool:
    """``np.all(np.abs(x) == 1.0)`` for flat float32 ``x``, counted a stretch at a time (the
    count vectorises; a non-binary input stops at its first stretch)."""
    one = np.float32(1.0)
    for start in range(0, x.size, 4096):
        off = 0
        for i in range(start, min(start + 4096, x.size)):
            if abs(x[i]) != one:
                off += 1
        if off:
            return False
    return True


def adc_quantize(p: np.ndarray, bits: int, full_scale: float) -> np.ndarray:
    """Signed mid-rise quantiser of 2^bits codes over [-full_scale, full_scale], in place;
    values beyond full scale clip to the outermost code."""
    half = 2 ** (bits - 1)
    lsb = np.float32(full_scale / half)
    p /= lsb
    np.floor(p, out=p)
    np.clip(p, -half, half - 1, out=p)
    p += np.float32(0.5)
    p *= lsb
    return p


@numba.njit(inline="always")
def _adc_code(partial: np.float32, half: np.float32, lsb: np.float32) -> np.float32:
    """One partial sum converted: the float32 operations of :func:`adc_quantize` in its
    order (divide, floor, clip, + 1/2, times lsb; NaN passes the clip as in np.clip)."""
    q = np.floor(partial / lsb)
    if q < -half:
        q = -half
    elif q > half - np.float32(1.0):
        q = half - np.float32(1.0)
    return (q + np.float32(0.5)) * lsb


@numba.njit(**SERIAL_OPTIONS)
def _adc_quantize_into(partial: np.ndarray, out: np.ndarray, half: np.float32, lsb: np.float32,
                       add: bool) -> None:
    """Every partial sum converted (:func:`_adc_code`), then written to ``out`` (``add``
    False, ``out`` may be ``partial``) or added to it: one pass instead of six, in the
    calling thread. Flat C-contiguous float32 arrays; each element is independent, so the
    caller may cut them in parts (:func:`archsim.learning.kernels.in_halves`)."""
    for i in range(partial.size):
        q = _adc_code(partial[i], half, lsb)
        out[i] = out[i] + q if add else q


@numba.njit(inline="always")
def _adc_sum_range(partials: np.ndarray, out: np.ndarray, half: np.float32, lsb: np.float32,
                   start: int, stop: int) -> None:
    """out[start:stop] = code(partials[0]) + code(partials[1]) + ... in block order."""
    for i in range(start, stop):
        out[i] = _adc_code(partials[0, i], half, lsb)
    for k in range(1, partials.shape[0]):
        for i in range(start, stop):
            out[i] = out[i] + _adc_code(partials[k, i], half, lsb)


@numba.njit(**JIT_OPTIONS)
def _adc_sum_blocks(partials: np.ndarray, out: np.ndarray, half: np.float32, lsb: np.float32,
                    chunks: int) -> None:
    """Every block's partial sums converted (:func:`_adc_code`) and added up over the blocks
    in order (block 0 + block 1 + ...), per element the float32 operations of quantising the
    stacked (blocks, n) partial sums and summing them over the block axis, in one call
    instead of one per block. ``chunks`` (:func:`scan_chunks`) > 1 splits the elements over
    the kernels' threads; each element's sum stays in one thread, in block order."""
    n = out.size
    if chunks == 1:
        _adc_sum_range(partials, out, half, lsb, 0, n)
        return
    for c in numba.prange(chunks):
        start, stop = chunk_bounds(n, chunks, c)
        _adc_sum_range(partials, out, half, lsb, start, stop)



@dataclass
class Dac(Component):
    """Input drivers. Action ``convert``: apply one input value to one row for one slice.

    Energy of a b-bit conversion = E_ref * 2^(b - b_ref) (Accelergy's DAC resolution scaling);
    bit-serial drivers are 1-bit. Latency: ``latency_s`` per slice (all rows in parallel).
    """

    bits: int = 1
    input_bits: int = 8
    bit_serial: bool = True
    latency_s: float = 1e-9

    @classmethod
    def from_config(cls, cfg: DacConfig, clock_hz: float, cmos_scale: float) -> "Dac":
        """``cmos_scale``: energy factor from the source node/supply to the chip's."""
        bits = 1 if cfg.mode == "bit_serial" else cfg.input_bits
        energy = cfg.energy_per_conversion_j * 2.0 ** (bits - cfg.reference_bits) * cmos_scale
        return cls("dac", clock_hz, {"convert": energy}, bits=bits, input_bits=cfg.input_bits,
                   bit_serial=cfg.mode == "bit_serial", latency_s=cfg.latency_s)

    def slices(self, binary_inputs: bool) -> int:
        """Slices to apply one input vector: 1 for binary (sign) inputs or multi-bit DACs."""
        if binary_inputs or not self.bit_serial:
            return 1
        return self.input_bits

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """The input values the drivers actually apply (``input_bits`` resolution)."""
        return dac_quantize(x, self.input_bits)


ADC_MODELS: Registry[type["Adc"]] = Registry("ADC model", "hardware.adc.model")


@dataclass
class Adc(Component):
    """Column ADCs behind a fixed multiplexer. Action ``convert``: one conversion.

    Multiplexer: ADC ``k`` is hard-wired to lines ``[k * columns_per_adc, (k+1) *
    columns_per_adc)``; the lines sharing an ADC are converted one after another, so a
    tile's conversion time is set by its busiest ADC (``conversion_rounds``), not by the
    number of ADCs: a half-used tile leaves half of its ADCs idle.

    Transform: signed mid-rise quantiser of 2^bits codes over [-FS, +FS] with
    ``FS = f * lines * max|x| * max|w|``, f = ``full_scale_fraction`` or
    ``min(1, auto_sigmas / sqrt(lines))`` (auto_sigmas standard deviations of a sum of
    ``lines`` independent unit-variance products).
    """

    bits: int = 8
    columns_per_adc: int = 8
    latency_s: float = 9e-9
    full_scale_fraction: float | None = None
    auto_sigmas: float = 4.0
    per_vector: bool = False  # slices integrated in the analog domain, one conversion per vector
    _rounds: dict[tuple[int, int, int], int] = field(default_factory=dict, repr=False)

    # ---- model hooks: a subclass registered in ADC_MODELS overrides these -----------------
    @classmethod
    def conversion_energy_j(cls, cfg: AdcConfig, cmos_scale: float) -> float:
        raise NotImplementedError

    @classmethod
    def conversion_time_s(cls, cfg: AdcConfig) -> float:
        raise NotImplementedError

    @classmethod
    def from_config(cls, cfg: AdcConfig, clock_hz: float, cmos_scale: float) -> "Adc":
        model = ADC_MODELS.get(cfg.model)
        return model("adc", clock_hz, {"convert": model.conversion_energy_j(cfg, cmos_scale)},
                     bits=cfg.bits, columns_per_adc=cfg.columns_per_adc,
                     latency_s=model.conversion_time_s(cfg),
                     full_scale_fraction=cfg.full_scale_fraction, auto_sigmas=cfg.auto_sigmas,
                     per_vector=cfg.conversion == "per_vector")

    # ---- costs -------------------------------------------------------------------------
    def adcs_for(self, lines: int) -> int:
        """ADCs serving ``lines`` physical lines."""
        return ceil_div(lines, self.columns_per_adc)

    def conversion_rounds(self, values: int, line_step: int = 1) -> int:
        """Sequential conversions of the busiest ADC when ``values`` values are sensed on
        lines 0, line_step, 2 line_step, ... (a differential pair is sensed once, at its
        first column: line_step 2)."""
        if values <= 0:
            return 0
        key = (values, line_step, self.columns_per_adc)
        rounds = self._rounds.get(key)
        if rounds is None:
            adc_of_value = np.arange(values) * line_step // self.columns_per_adc
            rounds = self._rounds[key] = int(np.bincount(adc_of_value).max())
        return rounds

    def conversions(self, slices: int) -> int:
        """Conversions of one output for an input of ``slices`` slices (1 when the slices are
        integrated in the analog domain, adc.conversion = 'per_vector')."""
        return 1 if self.per_vector else slices

    def stage_cycles(self, rounds: int, slices: int) -> int:
        return cycles(slices * rounds * self.latency_s, self.clock_hz)

    # ---- transform ---------------------------------------------------------------------
    def fraction(self, lines: int) -> float:
        if self.full_scale_fraction is not None:
            return self.full_scale_fraction
        return min(1.0, self.auto_sigmas / np.sqrt(lines))

    def full_scale(self, lines: int, x_max: float, w_max: float) -> float:
        return self.fraction(lines) * lines * x_max * w_max

    def quantize(self, partial: np.ndarray, lines: int, x_max: float, w_max: float) -> np.ndarray:
        """Clip and quantise partial sums of ``lines`` driven lines, in place (any shape:
        every tile's partial sums of a layer at once)."""
        return adc_quantize(partial, self.bits, self.full_scale(lines, x_max, w_max))

    def _kernel_codes(self, partial: np.ndarray, out: np.ndarray, lines: int, x_max: float,
                      w_max: float) -> tuple[np.float32, np.float32] | None:
        """(half the codes, lsb) as the compiled conversion takes them, or None when it cannot
        stand in for :meth:`quantize`: a model with its own transform, or operands that are
        not C-contiguous float32."""
        if not (type(self).quantize is Adc.quantize and partial.dtype == out.dtype == np.float32
                and partial.flags.c_contiguous and out.flags.c_contiguous):
            return None
        half = 2 ** (self.bits - 1)
        return np.float32(half), np.float32(self.full_scale(lines, x_max, w_max) / half)

    def quantize_into(self, partial: np.ndarray, out: np.ndarray, add: bool, lines: int,
                      x_max: float, w_max: float) -> None:
        """``out = quantize(partial)`` (``add`` False; ``out`` may be ``partial``) or
        ``out += quantize(partial)``: the DPU accumulating converted partial sums. Bit-identical
        to :meth:`quantize` then the numpy add; fused into one pass when the model keeps the
        base transform, else through the model's :meth:`quantize`."""
        codes = self._kernel_codes(partial, out, lines, x_max, w_max)
        if codes is not None:
            flat, into = partial.reshape(-1), out.reshape(-1)
            # halves on this and the helper thread: each call is ~0.1 ms of work, less than a
            # parallel kernel launch (a wide layer converts one row block's sums at a time)
            in_halves(flat.size, lambda start, stop: _adc_quantize_into(
                flat[start:stop], into[start:stop], *codes, add))
            return
        self.quantize(partial, lines, x_max, w_max)
        if add:
            out += partial
        elif out is not partial:
            out[...] = partial

    def quantize_sum(self, partials: np.ndarray, out: np.ndarray, lines: int, x_max: float,
                     w_max: float) -> None:
        """``out = quantize(partials[0]) + quantize(partials[1]) + ...`` in block order: the
        DPU accumulating every row block's converted partial sums, ``partials`` (blocks,
        *out.shape), overwritten. Bit-identical to :meth:`quantize_into` block by block; one
        fused pass when the model keeps the base transform."""
        blocks = partials.shape[0]
        codes = self._kernel_codes(partials, out, lines, x_max, w_max)
        if codes is not None:
            with kernel_launch():
                _adc_sum_blocks(partials.reshape(blocks, -1), out.reshape(-1), *codes,
                                scan_chunks(partials.size, "stream"))
            return
        for k in range(blocks):
            self.quantize_into(partials[k], out, k > 0, lines, x_max, w_max)


@ADC_MODELS.register("sar")
class SarAdc(Adc):
    """Successive-approximation ADC.

    Energy: ``energy_per_conversion_j`` at ``reference_bits`` scaled by the ISAAC/Saberi
    energy-vs-resolution table (:func:`adc_resolution_factor`) and to the chip's node.
    Time: ``latency_s`` or NeuroSim's (bits + 1) x 1 ns.
    """

    @classmethod
    def conversion_energy_j(cls, cfg: AdcConfig, cmos_scale: float) -> float:
        return (cfg.energy_per_conversion_j * adc_resolution_factor(cfg.bits)
                / adc_resolution_factor(cfg.reference_bits) * cmos_scale)

    @classmethod
    def conversion_time_s(cls, cfg: AdcConfig) -> float:
        return cfg.latency_s if cfg.latency_s is not None else default_adc_latency_s(cfg.bits)


__all__ = ["ADC_MODELS", "Adc", "Dac", "SarAdc", "adc_quantize", "adc_resolution_factor",
           "dac_quantize", "default_adc_latency_s"]
