"""Convolution and pooling layers (im2col): against direct loops, finite differences, tiles."""

from __future__ import annotations

import numpy as np
import pytest

from archsim.learning.layers import Conv2d, Pool2d, col2im, im2col, tiles_for_matrix
from archsim.learning.network import IdealMvm


def direct_conv(x, w, k, stride, padding):
    """Naive convolution with explicit loops (the reference); w is (C_in*k*k, C_out)."""
    n, c, h, width = x.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    oh = (h + 2 * padding - k) // stride + 1
    ow = (width + 2 * padding - k) // stride + 1
    kern = w.reshape(c, k, k, -1)
    out = np.zeros((n, kern.shape[-1], oh, ow))
    for b in range(n):
        for o in range(kern.shape[-1]):
            for i in range(oh):
                for j in range(ow):
                    patch = xp[b, :, i * stride: i * stride + k, j * stride: j * stride + k]
                    out[b, o, i, j] = np.sum(patch * kern[..., o])
    return out


@pytest.mark.parametrize("k,stride,padding", [(3, 1, 0), (3, 1, 1), (3, 2, 1), (2, 2, 0), (5, 3, 2)])
def test_conv_matches_direct_loops(k, stride, padding):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 9, 8))
    conv = Conv2d(3, 4, k, stride, padding)
    w = rng.normal(size=conv.matrix_shape)
    out, _ = conv.forward(0, x.transpose(0, 2, 3, 1), w, IdealMvm())  # NHWC
    assert out.shape[1:] == conv.output_shape(9, 8)
    np.testing.assert_allclose(out.transpose(0, 3, 1, 2), direct_conv(x, w, k, stride, padding),
                               rtol=1e-10, atol=1e-10)


def test_col2im_is_the_adjoint_of_im2col():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 7, 7, 2))
    cols = rng.normal(size=im2col(x, 3, 2, 1).shape)
    # <im2col(x), cols> == <x, col2im(cols)> for every x, cols
    assert np.sum(im2col(x, 3, 2, 1) * cols) == pytest.approx(np.sum(x * col2im(cols, x.shape, 3, 2, 1)))


def test_conv_gradients_match_finite_differences():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(2, 6, 6, 2))
    conv = Conv2d(2, 3, 3, stride=2, padding=1)
    w = rng.normal(size=conv.matrix_shape)
    target = rng.normal(size=(2, *conv.output_shape(6, 6)))

    def loss(x_, w_):
        out, _ = conv.forward(0, x_, w_, IdealMvm())
        return 0.5 * np.sum((out - target) ** 2)

    out, cols = conv.forward(0, x, w, IdealMvm())
    grad_w, grad_x = conv.backward(0, out - target, cols, w, x.shape, IdealMvm())
    eps = 1e-6
    for index in [(0, 0), (5, 2), (17, 1)]:
        dw = np.zeros_like(w)
        dw[index] = eps
        assert grad_w[index] == pytest.approx((loss(x, w + dw) - loss(x, w - dw)) / (2 * eps), rel=1e-5)
    for index in [(0, 0, 0, 0), (1, 3, 5, 1), (0, 5, 2, 1)]:
        dx = np.zeros_like(x)
        dx[index] = eps
        assert grad_x[index] == pytest.approx((loss(x + dx, w) - loss(x - dx, w)) / (2 * eps), rel=1e-5)


@pytest.mark.parametrize("mode", ["max", "avg"])
def test_pooling_forward_and_gradient(mode):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(2, 6, 6, 3))  # NHWC
    pool = Pool2d(2, mode)
    out, state = pool.forward(x)
    blocks = x.reshape(2, 3, 2, 3, 2, 3)
    expected = blocks.max(axis=(2, 4)) if mode == "max" else blocks.mean(axis=(2, 4))
    np.testing.assert_allclose(out, expected)
    g = rng.normal(size=out.shape)
    grad = pool.backward(g, state, x.shape)
    eps = 1e-6
    for index in [(0, 0, 0, 0), (1, 5, 4, 2), (0, 3, 2, 1)]:
        dx = np.zeros_like(x)
        dx[index] = eps
        numeric = (np.sum(pool.forward(x + dx)[0] * g) - np.sum(pool.forward(x - dx)[0] * g)) / (2 * eps)
        assert grad[index] == pytest.approx(numeric, rel=1e-5, abs=1e-9)


def test_im2col_mapping_tile_count_by_hand():
    # 3x3 conv, 1 -> 16 channels: 9 rows x 16 columns, one 128x128 tile.
    first = Conv2d(1, 16, 3, padding=1)
    assert first.matrix_shape == (9, 16)
    assert tiles_for_matrix(*first.matrix_shape, 128, 128) == 1
    # 3x3 conv, 16 -> 32 channels: 144 rows -> ceil(144/128) = 2 row tiles, 1 column tile.
    second = Conv2d(16, 32, 3, padding=1)
    assert second.matrix_shape == (144, 32)
    assert tiles_for_matrix(*second.matrix_shape, 128, 128) == 2
    # Replicated 4 times to process 4 windows at once: 8 tiles.
    assert tiles_for_matrix(*second.matrix_shape, 128, 128, replicas=4) == 8
    # 28x28 MNIST with padding 1, stride 1: 784 windows (MVMs) per image; stride 2: 14*14.
    assert first.windows_per_image(28, 28) == 784
    assert Conv2d(1, 16, 3, stride=2, padding=1).windows_per_image(28, 28) == 196
