"""Convolution and pooling layers as crossbar matrix products (im2col), batched numpy.

A 2-D convolution with a k x k kernel, C_in input and C_out output channels is unrolled
("im2col", Chellapilla, Puri & Simard, "High performance convolutional neural networks for
document processing", IWFHR 2006): every output position reads one window of C_in*k*k inputs,
so the layer is one matrix of C_in*k*k rows (the kernel, one crossbar row per kernel weight)
by C_out columns, applied to OH*OW windows per image. On a crossbar this is the mapping of
ISAAC (Shafiee et al., ISCA 2016) and PUMA (Ankit et al., ASPLOS 2019): the kernel is stored
once and the windows are streamed through it, so a convolution costs OH*OW matrix-vector
products per image on the same tiles.

The matrix products go through the same :class:`~archsim.learning.network.Mvm` as dense
layers, so circuit effects apply unchanged. Feature maps are NHWC float32 (images, height,
width, channels): a (N*H*W, C) view of them is what batch-norm normalises per channel and
what the next convolution's im2col reads, with no transposes. Window columns are ordered
(channel, ky, kx).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from archsim.config.layers import conv_output_size

if TYPE_CHECKING:  # network.py builds its layers from this module
    from archsim.learning.network import Mvm


def im2col(x: np.ndarray, kernel: int, stride: int, padding: int) -> np.ndarray:
    """(N, H, W, C) -> (N*OH*OW, C*k*k): one row per window, columns ordered (c, ky, kx)."""
    n, h, w, c = x.shape
    padded = np.pad(x, ((0, 0), (padding, padding), (padding, padding), (0, 0))) if padding else x
    windows = np.lib.stride_tricks.sliding_window_view(padded, (kernel, kernel), axis=(1, 2))
    windows = windows[:, ::stride, ::stride]  # (N, OH, OW, C, k, k)
    oh, ow = windows.shape[1], windows.shape[2]
    return np.ascontiguousarray(windows).reshape(n * oh * ow, c * kernel * kernel)


def col2im(cols: np.ndarray, x_shape: tuple[int, int, int, int], kernel: int, stride: int,
           padding: int) -> np.ndarray:
    """Adjoint of :func:`im2col`: sum every window's entries back onto the input positions."""
    n, h, w, c = x_shape
    oh = conv_output_size(h, kernel, stride, padding)
    ow = conv_output_size(w, kernel, stride, padding)
    blocks = cols.reshape(n, oh, ow, c, kernel, kernel)
    padded = np.zeros((n, h + 2 * padding, w + 2 * padding, c), dtype=cols.dtype)
    for ky in range(kernel):  # k*k strided adds, never a loop over images or positions
        for kx in range(kernel):
            padded[:, ky: ky + stride * oh: stride, kx: kx + stride * ow: stride] += blocks[..., ky, kx]
    return padded[:, padding: padding + h, padding: padding + w]


@dataclass(frozen=True)
class Conv2d:
    """k x k convolution, no bias; its weights are a (C_in*k*k, C_out) crossbar matrix."""

    in_channels: int
    out_channels: int
    kernel: int
    stride: int = 1
    padding: int = 0

    @property
    def matrix_shape(self) -> tuple[int, int]:
        """(rows, columns) of the unrolled kernel: the crossbar it occupies."""
        return self.in_channels * self.kernel * self.kernel, self.out_channels

    def output_shape(self, height: int, width: int) -> tuple[int, int, int]:
        """(OH, OW, C_out) of an input of ``height`` x ``width``."""
        oh = conv_output_size(height, self.kernel, self.stride, self.padding)
        ow = conv_output_size(width, self.kernel, self.stride, self.padding)
        return oh, ow, self.out_channels

    def windows_per_image(self, height: int, width: int) -> int:
        """Matrix-vector products per image: one per output position."""
        oh, ow, _ = self.output_shape(height, width)
        return oh * ow

    def forward(self, layer: int, x: np.ndarray, weights: np.ndarray, mvm: Mvm) -> tuple[np.ndarray, np.ndarray]:
        """Output (N, OH, OW, C_out) and the unrolled input kept for the backward pass."""
        n, h, w, _ = x.shape
        cols = im2col(x, self.kernel, self.stride, self.padding)
        out = mvm.forward(layer, cols, weights)
        return out.reshape(n, *self.output_shape(h, w)), cols

    def backward(self, layer: int, grad_out: np.ndarray, cols: np.ndarray, weights: np.ndarray,
                 x_shape: tuple[int, int, int, int], mvm: Mvm | None) -> tuple[np.ndarray, np.ndarray | None]:
        """Gradients with respect to the weights and (unless ``mvm`` is None) to the input."""
        g = grad_out.reshape(-1, self.out_channels)
        grad_w = cols.T @ g
        if mvm is None:
            return grad_w, None
        grad_cols = mvm.backward(layer, g, weights)
        return grad_w, col2im(grad_cols, x_shape, self.kernel, self.stride, self.padding)


@dataclass(frozen=True)
class Pool2d:
    """Non-overlapping max or average pooling (window = stride = ``size``), in the DPU.
    Rows and columns beyond a whole number of windows are dropped (as torch's floor mode)."""

    size: int
    mode: str = "max"

    def _blocks(self, x: np.ndarray) -> np.ndarray:
        n, h, w, c = x.shape
        s = self.size
        oh, ow = h // s, w // s
        return x[:, : oh * s, : ow * s].reshape(n, oh, s, ow, s, c)

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Pooled (N, OH, OW, C) and, for max pooling, the winner of each window."""
        blocks = self._blocks(x)
        if self.mode == "avg":
            return blocks.mean(axis=(2, 4)), None
        n, oh, s, ow, _, c = blocks.shape
        # The first maximum of each window takes the whole gradient.
        flat = blocks.transpose(0, 1, 3, 5, 2, 4).reshape(n, oh, ow, c, s * s)
        argmax = flat.argmax(axis=-1)
        return np.take_along_axis(flat, argmax[..., None], axis=-1)[..., 0], argmax

    def backward(self, grad_out: np.ndarray, argmax: np.ndarray | None,
                 x_shape: tuple[int, int, int, int]) -> np.ndarray:
        n, h, w, c = x_shape
        s = self.size
        oh, ow = grad_out.shape[1], grad_out.shape[2]
        if self.mode == "avg":
            spread = np.broadcast_to(grad_out[..., None] / (s * s), (n, oh, ow, c, s * s))
        else:
            spread = np.zeros((n, oh, ow, c, s * s), dtype=grad_out.dtype)
            np.put_along_axis(spread, argmax[..., None], grad_out[..., None], axis=-1)
        blocks = spread.reshape(n, oh, ow, c, s, s).transpose(0, 1, 4, 2, 5, 3).reshape(n, oh * s, ow * s, c)
        if (oh * s, ow * s) == (h, w):
            return np.ascontiguousarray(blocks)
        grad = np.zeros(x_shape, dtype=grad_out.dtype)
        grad[:, : oh * s, : ow * s] = blocks
        return grad


def tiles_for_matrix(rows: int, cols: int, tile_rows: int, tile_cols: int, replicas: int = 1) -> int:
    """Crossbar tiles holding a rows x cols matrix (``tile_cols`` weight columns per tile),
    ``replicas`` times (to process several windows at once: area for latency)."""
    return math.ceil(rows / tile_rows) * math.ceil(cols / tile_cols) * replicas
