"""wen2019: every ablation step of Table 2 codes exactly (library, SavedModel
in a fresh process, odd sizes); the stacked masked contexts are causal (the
full model's contract: tests/test_contract.py)."""

import numpy as np
import pytest
import tensorflow as tf

from tflic import codec as codec_lib
from tflic import export
from tflic import models
from tflic import train
from tflic.layers import ResidualBlock
from tflic.layers.multiscale import MultiScaleAnalysis
from tflic.models.base import to_uint8
from tests.conftest import TINY, coding_functions, padded, random_image
from tests.test_savedmodel import _fresh

# Table 2: "Original" (the joint model) and its three steps, cumulative.
STEPS = {
    "original": dict(separate_entropy_model=False, multiscale_encoder=False,
                     weighted_layer=False, residual_decoder=False,
                     assistant=False),
    "separate": dict(multiscale_encoder=False, weighted_layer=False,
                     residual_decoder=False, assistant=False),
    "multiscale": dict(residual_decoder=False, assistant=False),
    "residual": {},
}


def variant(step, **args):
  return train.build("wen2019", {**TINY, **STEPS[step], **args})


@pytest.mark.parametrize("step", [
    # the full model (the golden wen2019's) in the fast suite: test_contract
    pytest.param(s, marks=pytest.mark.slow) if s == "residual" else s
    for s in STEPS])
def test_every_step_round_trips(step):
  """Odd sizes decode to the synthesis of the encoder's latents."""
  codec = codec_lib.Codec(variant(step))
  model = codec.model
  encode = coding_functions(model)[0]
  for height, width in ((1, 1), (17, 33)):
    image = random_image(height, width, seed=width)
    data = codec.encode(image)["bitstream_bytes"]
    decoded = codec.decode(data)["image"].numpy()
    _, latents = encode(padded(model, image))
    expected = to_uint8(model.synthesis(model.synthesis_input(latents))[0])
    np.testing.assert_array_equal(decoded, expected[:height, :width].numpy())


@pytest.mark.slow  # the default suite: the full model in test_portability
@pytest.mark.parametrize("step", list(STEPS))
def test_every_step_in_a_fresh_process(step, tmp_path):
  """The SavedModel in a fresh process writes the library's bytes and
  decodes them to its image."""
  path = export.export(variant(step), str(tmp_path / "m"), name="wen2019")
  library = codec_lib.SavedCodec(path)
  image = random_image(37, 70, seed=3)
  expected = library.encode(image)
  data, decoded = _fresh(path, image, "tf2", tmp_path)
  assert data == expected
  np.testing.assert_array_equal(decoded, library.decode(expected))


def test_steps_change_what_they_say():
  """Each step adds its parts; every variant trains (finite loss)."""
  built = {step: variant(step) for step in STEPS}
  path = lambda m: m.latent_codec.y_codec.parameters
  contexts = {s: len(path(m).contexts) for s, m in built.items()}
  assert contexts == dict(original=1, separate=2, multiscale=2, residual=2)
  assert path(built["separate"]).absolute == [False, True]
  pyramid = {s: isinstance(m.analysis, MultiScaleAnalysis)
             and m.weighting is not None for s, m in built.items()}
  assert pyramid == dict(original=False, separate=False, multiscale=True,
                         residual=True)
  residual = {s: any(isinstance(l, ResidualBlock) for l in m.synthesis.layers)
              and m.assistant is not None for s, m in built.items()}
  assert residual == dict(original=False, separate=False, multiscale=False,
                          residual=True)
  for model in built.values():
    model.compile(optimizer=tf.keras.optimizers.Adam(1e-3))
    logs = model.train_step(tf.random.uniform([2, 64, 64, 3]))
    assert np.isfinite(float(logs["loss"]))
  with pytest.raises(ValueError, match="weighted_layer"):
    variant("separate", weighted_layer=True)


def test_table_1_widths_and_the_original_context():
  """Table 1: each branch's parameter network is three 1×1 convolutions
  with 384, 192 and 128 outputs (M = 128); the "Original" baseline has one
  masked 3×3 context (the three layers grow it "from 3×3 to 7×7")."""
  model = models.create("wen2019", num_filters=8, latent_channels=128,
                        hyper_channels=8, multiscale_encoder=False,
                        weighted_layer=False, residual_decoder=False,
                        assistant=False)
  model(tf.zeros([1, 64, 64, 3]))
  for network in model.latent_codec.y_codec.parameters.networks:
    assert [l.filters for l in network.layers] == [384, 192, 128]
    assert all(l.kernel_size == (1, 1) for l in network.layers)
  original = models.create("wen2019", num_filters=8, latent_channels=16,
                           hyper_channels=8, separate_entropy_model=False,
                           multiscale_encoder=False, weighted_layer=False,
                           residual_decoder=False, assistant=False)
  contexts = lambda m: m.latent_codec.y_codec.parameters.contexts[0]
  assert [c.kernel_size for c in contexts(original)] == [(3, 3)]
  assert [c.kernel_size for c in contexts(models.create("joint"))] == [(5, 5)]


def test_stacked_context_is_causal_and_reaches_three_rows():
  """Changing ŷ at and after a position changes no parameter before it in
  raster order (float and integer); the three 3×3 layers reach 3 rows down
  and 3 columns to each side (the 7×7 field)."""
  codec = codec_lib.Codec(variant("separate")).model.latent_codec
  path = codec.y_codec.parameters
  assert [c.rows_above for c in path.causals] == [3, 3]
  rng = np.random.default_rng(0)
  y = rng.integers(-4, 5, (1, 12, 12, TINY["latent_channels"]))
  z_hat = tf.constant(rng.integers(-2, 3, (1, 3, 3, TINY["hyper_channels"])),
                      tf.float32)
  hyper = codec.hyper(codec.z_codec.symbols(z_hat))

  def parameters(y):
    return (path.parallel(tf.constant(y, tf.int32), hyper)[0].numpy(),
            path(codec.h_s(z_hat), tf.constant(y, tf.float32))[0].numpy())

  before = parameters(y)
  p = (5, 4)
  changed = y.copy()
  changed[0, p[0], p[1]:] += 3
  changed[0, p[0] + 1:] -= 2
  after = parameters(changed)
  earlier = np.arange(144).reshape(12, 12) <= p[0] * 12 + p[1]
  for a, b in zip(after, before):  # the position itself: its context only
    np.testing.assert_array_equal(a[earlier], b[earlier])
    assert np.any(a[~earlier] != b[~earlier])
  # A change at (2, 5) alone reaches rows 2..5 and columns 2..8.
  single = y.copy()
  single[0, 2, 5] += 3
  rows, cols = np.nonzero(np.any(parameters(single)[0] != before[0], -1))
  assert (rows.min(), rows.max(), cols.min(), cols.max()) == (2, 5, 2, 8)
