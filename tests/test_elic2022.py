"""elic2022: the paper's architecture and uneven groups; each group's
distribution reads the earlier groups only (ψ fixed); the mixture option
codes exactly (make test-all). The model's contract: tests/test_contract.py
over its golden variant."""

import numpy as np
import pytest
import tensorflow as tf

from tflic import codec as codec_lib
from tflic import models
from tflic import train
from tests.conftest import padded, random_image


def test_the_papers_architecture():
  model = models.create("elic2022")
  codec = model.latent_codec
  groups = codec.y_codec
  assert groups.groups == [16, 16, 32, 64, 192]
  for context, g in zip(groups.channel_contexts, groups.groups[1:]):
    assert [l.filters for l in context.layers] == [224, 128, 2 * g]
    assert [l.kernel_size[0] for l in context.layers] == [5, 5, 5]
  first, last = groups.codecs[0], groups.codecs[-1]
  # Parameter aggregation: 1×1, from [φ_sp, (φ_ch,) ψ] down to 2·|group|.
  assert [l.filters for l in first.parameters.networks[0].layers] == [
      384, 384, 32]
  assert [l.filters for l in last.parameters.networks[0].layers] == [
      896, 640, 384]
  assert [l.filters for l in codec.h_s.layers] == [192, 288, 384]
  assert models.create("elic2022", latent_channels=128).latent_codec.y_codec\
      .groups == [6, 6, 12, 25, 79]


@pytest.mark.xdist_group("elic2022")  # (on the worker that has its codec)
def test_groups_read_the_earlier_groups_only(codecs):
  """ψ fixed: a change to group 3 changes no earlier group's bits and
  changes group 4's (its channel context reads groups 0–3)."""
  model = codecs("elic2022").model
  codec = model.latent_codec
  groups = codec.y_codec
  y = model.analyze(padded(model, random_image(64, 128, 5)))
  psi = codec.h_s(codec.z_codec(codec.h_a(y))[0]["z_hat"])
  bounds = np.cumsum([0] + groups.groups)

  def group_bits(y):
    bits, y_hats = [], []
    for k, part in enumerate(tf.split(y, groups.groups, -1)):
      side = psi if k == 0 else tf.concat(
          [psi, groups.channel_contexts[k - 1](tf.concat(y_hats, -1))], -1)
      latents, b = groups.codecs[k](part, side=side)
      y_hats.append(latents["y_hat"])
      bits.append(float(b[0]))
    return bits

  before = group_bits(y)
  changed = y.numpy()
  changed[..., bounds[3]:bounds[4]] += 2.
  after = group_bits(tf.constant(changed))
  assert after[:3] == before[:3]
  assert after[4] != before[4]
  total = float(groups(y, side=psi)[1][0])
  np.testing.assert_allclose(sum(before), total, rtol=1e-5)


@pytest.mark.slow  # (27 s; the checkerboard mixture: cheng2020_checkerboard)
def test_a_mixture_of_gaussians_codes_exactly():
  """mixture_components=2 (beyond the paper): files decode, through the
  decoder's latent check, to the synthesis of the encoder's latents."""
  codec = codec_lib.Codec(train.build("elic2022", dict(
      num_filters=8, latent_channels=8, mixture_components=2)))
  image = random_image(40, 70, seed=6)
  data = codec.encode(image)["bitstream_bytes"]
  assert codec.decode(data)["image"].shape == image.shape
