"""The checkerboard context (He et al. 2021): anchors from ψ alone,
non-anchors from ψ and the anchors around them, in float (training) and in
integers (coding); exact coding in both passes (tests/test_contract.py:
the golden checkerboard variants)."""

import numpy as np
import pytest
import tensorflow as tf

from tflic import codec as codec_lib
from tflic import train
from tflic.latent_codecs.checkerboard import anchors
from tflic.layers.masked_conv import causal_mask


def test_the_context_sees_the_anchors_around_a_non_anchor():
  mask = causal_mask(5, 5, "checkerboard")
  assert mask[2, 2] == 0 and mask[1, 2] == mask[2, 1] == mask[0, 1] == 1
  assert mask[1, 1] == mask[0, 0] == 0
  grid = anchors(3, 4)[..., 0].numpy()
  np.testing.assert_array_equal(grid, [[1, 0, 1, 0], [0, 1, 0, 1],
                                       [1, 0, 1, 0]])


@pytest.mark.parametrize("name, args", [
    ("joint", dict(num_filters=8, latent_channels=8, hyper_channels=8)),
    ("cheng2020", dict(num_filters=8))])
def test_anchors_from_psi_alone_non_anchors_from_the_anchors(name, args):
  """Float and integer parameters: changing a non-anchor changes no
  parameter; changing an anchor changes no anchor's parameters and only the
  non-anchors within the context's reach."""
  model = codec_lib.Codec(train.build(name, dict(
      args, context="checkerboard"))).model
  codec = model.latent_codec
  path = codec.y_codec.parameters
  rng = np.random.default_rng(1)
  channels = model.latent_channels
  y = rng.integers(-4, 5, (1, 8, 8, channels))
  z_hat = tf.constant(rng.integers(-2, 3, (1, 2, 2, codec.z_codec.channels)),
                      tf.float32)
  psi = codec.psi_rows(z_hat)(0, 8)
  mask = anchors(8, 8)[None]
  is_anchor = mask[0, ..., 0].numpy() > 0

  def parameters(y):
    """Integer parameters as the coder computes them (anchors with φ = 0,
    non-anchors from the anchors), float ones as training does."""
    context = tf.constant(y, tf.int32) * tf.cast(mask, tf.int32)
    at_anchors = path.parallel(None, psi, tf.where(is_anchor)).numpy()
    integer = np.zeros((8, 8, at_anchors.shape[-1]), at_anchors.dtype)
    integer[is_anchor] = at_anchors
    integer[~is_anchor] = path.parallel(context, psi,
                                        tf.where(~is_anchor)).numpy()
    floats = path(codec.h_s(z_hat), tf.constant(y, tf.float32) * mask,
                  1. - mask)[0].numpy()
    return integer, floats

  before = parameters(y)
  everywhere = path.parallel(  # the network at every position: the same
      tf.constant(y, tf.int32) * tf.cast(mask, tf.int32), psi)[0].numpy()
  np.testing.assert_array_equal(before[0][~is_anchor], everywhere[~is_anchor])
  changed = y.copy()
  changed[0, 3, 4] += 3  # a non-anchor
  for a, b in zip(parameters(changed), before):
    np.testing.assert_array_equal(a, b)
  changed = y.copy()
  changed[0, 3, 3] += 3  # an anchor
  for a, b in zip(parameters(changed), before):
    np.testing.assert_array_equal(a[is_anchor], b[is_anchor])
    rows, cols = np.nonzero(np.any(a != b, -1))
    assert rows.size and np.all(np.abs(rows - 3) + np.abs(cols - 3) <= 4)
    assert not np.any(is_anchor[rows, cols])
