"""Cheng 2020's down-sampling residual block: its main branch and its skip
see the same pixels (the stride-2 convolution is centred on the pixels the
skip keeps)."""

import numpy as np
import pytest
import tensorflow as tf

from tflic.layers import ResidualBlockWithStride


@pytest.mark.parametrize("height,width", [(8, 8), (7, 9), (1, 2)])
def test_an_impulse_reaches_the_same_position_in_both_branches(height, width):
  block = ResidualBlockWithStride(1)
  block(tf.zeros([1, height, width, 1]))
  conv, subsample = block.main[0], block.skip[0]
  conv.kernel.assign(tf.ones_like(conv.kernel))  # a 3×3 box
  conv.bias.assign(tf.zeros_like(conv.bias))
  # The last even pixel: a "same" convolution (centred on odd pixels) would
  # also reach the output before it.
  r, c = (height - 1) // 2, (width - 1) // 2
  impulse = np.zeros([1, height, width, 1], np.float32)
  impulse[0, 2 * r, 2 * c, 0] = 1.
  main, skip = conv(impulse).numpy(), subsample(impulse).numpy()
  assert main.shape == skip.shape == (1, (height + 1) // 2, (width + 1) // 2, 1)
  assert np.argwhere(main).tolist() == np.argwhere(skip).tolist() == [
      [0, r, c, 0]]
