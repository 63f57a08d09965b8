"""ms2020: the paper's architecture; each slice conditioned on ψ and the
first `max_support_slices` slices only, on the exact integer path as in
training; the latent residual prediction's table (the model's contract:
tests/test_contract.py over its golden variant)."""

import numpy as np
import pytest
import tensorflow as tf

from tflic import models
from tflic.latent_codecs import channel_slices
from tests.conftest import padded, random_image


def test_the_papers_architecture():
  model = models.create("ms2020")
  codec = model.latent_codec
  y_codec = codec.y_codec
  assert (y_codec.channels, y_codec.slices, y_codec.max_support) == (320, 10, 5)
  for transforms in (y_codec.mean_transforms, y_codec.scale_transforms,
                     y_codec.lrp_transforms):
    assert len(transforms) == 10
    assert [l.filters for l in transforms[0].layers] == [224, 128, 32]
    assert [l.kernel_size[0] for l in transforms[0].layers] == [5, 5, 3]
  assert [l.filters for l in codec.h_a.layers] == [320, 256, 192]
  assert [l.filters for l in codec.h_s.layers] == [384, 512, 640]


def test_the_residual_prediction_table():
  table = channel_slices.lrp_table().numpy()
  x = np.arange(-channel_slices.LRP_LIMIT, channel_slices.LRP_LIMIT + 1)
  np.testing.assert_array_equal(table, np.round(32 * np.tanh(x / 64)))
  np.testing.assert_array_equal(table, -table[::-1])
  assert table[0] == -32 and table[-1] == 32  # saturated at the limit


@pytest.mark.xdist_group("ms2020")  # (on the worker that has its codec)
def test_slices_read_the_first_slices_only(codecs):
  """ψ fixed, 4 slices and a support of 2: a change to slice 2 changes no
  other slice of the decoded ŷ (slice 3's μ and σ read slices 0 and 1); a
  change to slice 0 changes later slices' ŷ too. Integer coding as in training:
  the decoded ŷ is the float model's up to the 2^−6 grid of μ and LRP."""
  model = codecs("ms2020").model
  codec = model.latent_codec
  y = model.analyze(padded(model, random_image(64, 128, 4)))
  depth = model.latent_channels // 4

  psi = codec.psi_rows(codec.encode(y)[1]["z_hat"])  # ψ kept fixed

  def decoded(y):
    streams, _ = codec.y_codec.encode(y, side=psi)
    height, width = y.shape[1:3]
    return codec.y_codec.decode(streams, tf.constant([height, width]),
                                side=psi)["y_hat"]

  base = decoded(y).numpy()
  for changed, unchanged in ((2, [0, 1, 3]), (0, [])):
    shifted = y.numpy()
    shifted[..., changed * depth:(changed + 1) * depth] += 3.
    after = decoded(tf.constant(shifted)).numpy()
    for i in range(4):
      same = np.array_equal(after[..., i * depth:(i + 1) * depth],
                            base[..., i * depth:(i + 1) * depth])
      assert same == (i in unchanged), (changed, i)
  float_y_hat = codec(y)[0]["y_hat"].numpy()
  close = np.abs(float_y_hat - base) <= 4. / 64
  assert close.mean() > .95, close.mean()
