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
layers, so circuit effects apply unchanged. Arrays are NCHW float32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from archsim.learning.network import Mvm


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    """Output length along one axis: floor((size + 2*padding - kernel) / stride) + 1."""
    return (size + 2 * padding - kernel) // stride + 1


def im2col(x: np.ndarray, kernel: int, stride: int, padding: int) -> np.ndarray:
    """(N, C, H, W) -> (N*OH*OW, C*k*k): one row per window, columns ordered (c, ky, kx)."""
    n, c, h, w = x.shape
    padded = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding))) if padding else x
    windows = np.lib.stride_tricks.sliding_window_view(padded, (kernel, kernel), axis=(2, 3))
    windows = windows[:, :, ::stride, ::stride]  # (N, C, OH, OW, k, k)
    oh, ow = windows.shape[2], windows.shape[3]
    return np.ascontiguousarray(windows.transpose(0, 2, 3, 1, 4, 5)).reshape(n * oh * ow, c * kernel * kernel)


def col2im(cols: np.ndarray, x_shape: tuple[int, int, int, int], kernel: int, stride: int,
           padding: int) -> np.ndarray:
    """Adjoint of :func:`im2col`: sum every window's entries back onto the input positions."""
    n, c, h, w = x_shape
    oh = conv_output_size(h, kernel, stride, padding)
    ow = conv_output_size(w, kernel, stride, padding)
    blocks = cols.reshape(n, oh, ow, c, kernel, kernel).transpose(0, 3, 4, 5, 1, 2)
    padded = np.zeros((n, c, h + 2 * padding, w + 2 * padding), dtype=cols.dtype)
    for ky in range(kernel):  # k*k strided adds, never a loop over images or positions
        for kx in range(kernel):
            padded[:, :, ky: ky + stride * oh: stride, kx: kx + stride * ow: stride] += blocks[:, :, ky, kx]
    return padded[:, :, padding: padding + h, padding: padding + w]


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
        oh = conv_output_size(height, self.kernel, self.stride, self.padding)
        ow = conv_output_size(width, self.kernel, self.stride, self.padding)
        return self.out_channels, oh, ow

    def windows_per_image(self, height: int, width: int) -> int:
        """Matrix-vector products per image: one per output position."""
        _, oh, ow = self.output_shape(height, width)
        return oh * ow

    def forward(self, layer: int, x: np.ndarray, weights: np.ndarray, mvm: Mvm) -> tuple[np.ndarray, np.ndarray]:
        """Output (N, C_out, OH, OW) and the unrolled input kept for the backward pass."""
        n, _, h, w = x.shape
        cols = im2col(x, self.kernel, self.stride, self.padding)
        out = mvm.forward(layer, cols, weights)
        _, oh, ow = self.output_shape(h, w)
        return out.reshape(n, oh, ow, self.out_channels).transpose(0, 3, 1, 2), cols

    def backward(self, layer: int, grad_out: np.ndarray, cols: np.ndarray, weights: np.ndarray,
                 x_shape: tuple[int, int, int, int], mvm: Mvm) -> tuple[np.ndarray, np.ndarray]:
        """Gradients with respect to the weights and to the input."""
        g = grad_out.transpose(0, 2, 3, 1).reshape(-1, self.out_channels)
        grad_w = cols.T @ g
        grad_cols = mvm.backward(layer, g, weights)
        return grad_w, col2im(grad_cols, x_shape, self.kernel, self.stride, self.padding)


@dataclass(frozen=True)
class Pool2d:
    """Non-overlapping max or average pooling (window = stride = ``size``), in the DPU."""

    size: int
    mode: str = "max"

    def forward(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        n, c, h, w = x.shape
        s = self.size
        oh, ow = h // s, w // s
        blocks = x[:, :, : oh * s, : ow * s].reshape(n, c, oh, s, ow, s)
        if self.mode == "avg":
            return blocks.mean(axis=(3, 5)), None
        out = blocks.max(axis=(3, 5))
        # The first maximum of each window takes the whole gradient.
        flat = blocks.transpose(0, 1, 2, 4, 3, 5).reshape(n, c, oh, ow, s * s)
        argmax = flat.argmax(axis=-1)
        return out, argmax

    def backward(self, grad_out: np.ndarray, argmax: np.ndarray | None,
                 x_shape: tuple[int, int, int, int]) -> np.ndarray:
        n, c, h, w = x_shape
        s = self.size
        oh, ow = grad_out.shape[2], grad_out.shape[3]
        if self.mode == "avg":
            spread = np.broadcast_to(grad_out[..., None] / (s * s), (n, c, oh, ow, s * s))
        else:
            spread = np.zeros((n, c, oh, ow, s * s), dtype=grad_out.dtype)
            np.put_along_axis(spread, argmax[..., None], grad_out[..., None], axis=-1)
        blocks = spread.reshape(n, c, oh, ow, s, s).transpose(0, 1, 2, 4, 3, 5).reshape(n, c, oh * s, ow * s)
        grad = np.zeros(x_shape, dtype=grad_out.dtype)
        grad[:, :, : oh * s, : ow * s] = blocks
        return grad


def tiles_for_matrix(rows: int, cols: int, tile_rows: int, tile_cols: int, replicas: int = 1) -> int:
    """Crossbar tiles holding a rows x cols matrix, ``replicas`` times (to process several
    windows at once: area for latency)."""
    return math.ceil(rows / tile_rows) * math.ceil(cols / tile_cols) * replicas
