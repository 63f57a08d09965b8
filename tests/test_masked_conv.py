"""MaskedConv2D is causal, and its per-position matrix form equals the conv."""

import numpy as np
import pytest
import tensorflow as tf

from tflic.layers.masked_conv import MaskedConv2D


@pytest.mark.parametrize("mask_type", ["A", "B"])
def test_output_ignores_later_inputs(mask_type):
  layer = MaskedConv2D(4, 5, mask_type)
  rng = np.random.default_rng(0)
  x = rng.normal(size=(1, 7, 8, 3)).astype(np.float32)
  out = layer(x).numpy()
  h, w = 7, 8
  for p in range(h * w):
    # Inputs from p on (type A) or after p (type B) must not change outputs ≤ p.
    changed = x.copy().reshape(1, h * w, 3)
    changed[:, p + (mask_type == "B"):] += 10.
    changed = layer(changed.reshape(1, h, w, 3)).numpy()
    np.testing.assert_allclose(changed.reshape(h * w, -1)[:p + 1],
                               out.reshape(h * w, -1)[:p + 1], rtol=1e-5, atol=1e-5)


def test_centre_is_excluded_by_a_and_included_by_b():
  a, b = MaskedConv2D(1, 5, "A"), MaskedConv2D(1, 5, "B")
  assert len(a.offsets()) == 12 and (0, 0) not in a.offsets()
  assert len(b.offsets()) == 13 and (0, 0) in b.offsets()
  assert all(dy < 0 or (dy == 0 and dx < 0) for dy, dx in a.offsets())


def test_offset_kernel_matches_the_convolution():
  layer = MaskedConv2D(6, 5, "A")
  x = np.random.default_rng(1).normal(size=(1, 6, 6, 3)).astype(np.float32)
  out = layer(x).numpy()
  i, j = 3, 4
  padded = np.pad(x[0], [(2, 2), (2, 2), (0, 0)])
  neighbours = np.concatenate([padded[i + 2 + dy, j + 2 + dx]
                               for dy, dx in layer.offsets()])
  single = neighbours @ layer.offset_kernel().numpy() + layer.bias.numpy()
  np.testing.assert_allclose(single, out[0, i, j], rtol=1e-5, atol=1e-5)
