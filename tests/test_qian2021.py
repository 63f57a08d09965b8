"""The global reference model (Qian et al. 2021): a causal search that finds
exact repeats, causal stages, exact serial coding (full and bounded search,
the ablations), the integer search, reliability and combination (the
SavedModel in fresh processes: test_portability)."""

import math

import numpy as np
import pytest
import tensorflow as tf

from tflic import bitstream
from tflic import models
from tflic import codec as codec_lib
from tflic import train
from tflic.models.base import to_uint8
from tflic.entropy import global_reference as gr
from tflic.entropy import integer_gaussian as ig
from tflic.layers.masked_conv import causal_offsets
from tests.conftest import TINY, padded, random_image

SEARCH = causal_offsets(3, 3, "A")


def _patches(y_hat):
  batch, height, width, _ = y_hat.shape
  patches = gr.normalize(gr.shifted(tf.constant(y_hat), SEARCH))
  return tf.reshape(patches, [batch, height * width, -1]), width


def test_search_returns_an_exact_repeat_with_similarity_one():
  rng = np.random.default_rng(0)
  y_hat = rng.integers(-20, 21, (1, 9, 11, 4)).astype(np.float32)
  # The causal 3×3 patch of (6, 7): row 5, columns 6..8, and (6, 6).
  # Make it equal to the patch of (2, 3).
  y_hat[0, 5, 6:9] = y_hat[0, 1, 2:5]
  y_hat[0, 6, 6] = y_hat[0, 2, 2]
  patches, width = _patches(y_hat)
  index, s, valid = (t.numpy() for t in gr.search(patches, width))
  p = 6 * width + 7
  assert valid[0, p] and index[0, p] == 2 * width + 3
  assert s[0, p] == pytest.approx(1., abs=1e-6)
  # The coder's incremental search agrees.
  j, s_step, valid_step = gr.search_step(patches[0, :p], patches[0, p], 0)
  assert bool(valid_step) and int(j) == 2 * width + 3
  assert float(s_step) == pytest.approx(1., abs=1e-6)
  # Bounded to the 2 rows above, the repeat 4 rows up is out of reach.
  index = gr.search(patches, width, search_rows=2)[0].numpy()
  assert index[0, p] >= (6 - 2) * width


def _integer_patches(y_hat):
  """The coder's search patches (int32 [N, D]) and their |a|²."""
  y_hat = tf.constant(y_hat.astype(np.int32))
  patches = tf.reshape(gr.shifted(y_hat, SEARCH), [-1, len(SEARCH) * y_hat.shape[-1]])
  patches = tf.clip_by_value(patches, -gr.SEARCH_LIMIT, gr.SEARCH_LIMIT)
  return patches, tf.cast(tf.reduce_sum(patches * patches, -1), tf.int64)


def test_integer_search_agrees_with_the_float_search():
  reference = gr.IntegerReference(4)
  rng = np.random.default_rng(5)
  y_hat = rng.integers(-6, 7, (1, 8, 9, 4)).astype(np.float32)
  y_hat[0, 5, 6:9] = y_hat[0, 1, 2:5]  # an exact repeat for (6, 7), as above
  y_hat[0, 6, 6] = y_hat[0, 2, 2]
  y_hat[0, 3, 3] = 200  # beyond the search's clipping: as the float search
  patches, width = _patches(np.clip(y_hat, -gr.SEARCH_LIMIT, gr.SEARCH_LIMIT))
  index, s, valid = (t.numpy()[0] for t in gr.search(patches, width))
  ints, norms = _integer_patches(y_hat)
  for p in range(ints.shape[0]):
    j, s2, ok = reference.search_step(ints[:p], norms[:p], ints[p], norms[p], 0)
    assert bool(ok) == valid[p]
    if not valid[p]:
      continue
    # Cosines that tie in float32 may be ordered either way.
    if int(j) != index[p]:
      assert s[p] == pytest.approx(float(
          tf.reduce_sum(tf.linalg.l2_normalize(tf.cast(ints[p], tf.float32)) *
                        tf.linalg.l2_normalize(tf.cast(ints[int(j)], tf.float32)))),
          abs=1e-5)
    assert int(s2) / 2 ** 20 == pytest.approx(max(s[p], 0.) ** 2, abs=2e-3)
  p = 6 * width + 7
  j, s2, _ = reference.search_step(ints[:p], norms[:p], ints[p], norms[p], 0)
  assert int(j) == 2 * width + 3 and int(s2) == 2 ** 20


def test_integer_reliability_and_combination():
  reference = gr.IntegerReference(4)
  unit = ig.scale_step() / 16
  for s2, u in ((2 ** 20, 2 ** 15), (2 ** 18, 2 ** 13), (849347, 33),
                (0, 2 ** 14), (5, 7)):
    got = int(reference.reliability(tf.constant(s2, tf.int64),
                                    tf.constant(u, tf.int64)))
    expect = -float(gr.reliability(tf.constant(math.sqrt(s2 / 2 ** 20)),
                                   tf.constant(u / 2 ** 15))) / (2 * unit)
    assert got == pytest.approx(expect, abs=1.5), (s2, u)
    # The mixture's weight-logit term: ln(S⁺·U + ε) in units of 1/32.
    got = int(reference.weight_logit(tf.constant(s2, tf.int64),
                                     tf.constant(u, tf.int64)))
    expect = float(gr.reliability(tf.constant(math.sqrt(s2 / 2 ** 20)),
                                  tf.constant(u / 2 ** 15))) * 32
    assert got == pytest.approx(expect, abs=1.), (s2, u)
  rng = np.random.default_rng(6)
  mean_a, mean_b = (rng.integers(-2000, 2000, 50).astype(np.int32) for _ in "ab")
  fine_a, fine_b = (rng.integers(-3000, 3000, 50).astype(np.int32) for _ in "ab")
  mean, fine = reference.combine(mean_a, fine_a, mean_b, fine_b)
  precision = lambda f: -2. * (math.log(ig.SCALE_MIN) + f * unit)
  expect_mean, expect_precision = gr.combine(
      tf.constant(mean_a / 64.), tf.constant(precision(fine_a)),
      tf.constant(mean_b / 64.), tf.constant(precision(fine_b)))
  np.testing.assert_allclose(mean.numpy() / 64., expect_mean, atol=2 / 64.)
  np.testing.assert_allclose(precision(fine.numpy()), expect_precision,
                             atol=4 * unit)


@pytest.mark.parametrize("search_rows", [0, 1])
def test_search_is_causal(search_rows):
  rng = np.random.default_rng(1)
  y_hat = rng.integers(-3, 4, (1, 6, 7, 3)).astype(np.float32)
  patches, width = _patches(y_hat)
  index, s, valid = (t.numpy() for t in gr.search(patches, width, search_rows))
  assert not valid[0, 0] and s[0, 0] == 0
  for p in range(1, 42):
    assert 0 <= index[0, p] < p
    if search_rows:
      assert index[0, p] >= (p // width - search_rows) * width
    later = patches.numpy()
    later[0, p + 1:] = rng.normal(size=later[0, p + 1:].shape)
    index2, s2, _ = gr.search(tf.constant(later), width, search_rows)
    assert index2[0, p] == index[0, p] and s2[0, p] == s[0, p]


@pytest.mark.parametrize("reference", [True, False])
@pytest.mark.parametrize("combination", ["experts", "mixture"])
def test_stages_are_causal(reference, combination):
  model = train.build("qian2021", dict(TINY, reference=reference,
                                       stage_combination=combination))
  rng = np.random.default_rng(2)
  y_hat = rng.integers(-4, 5, (1, 5, 6, 16)).astype(np.float32)
  hyper = tf.constant(rng.normal(size=(1, 5, 6, 32)), tf.float32)
  stages = model.latent_codec.y_codec.stages
  before = stages(tf.constant(y_hat), hyper)
  for p in (0, 8, 17, 29):
    changed = y_hat.reshape(1, 30, 16).copy()
    changed[0, p:] = rng.integers(-4, 5, changed[0, p:].shape)
    after = stages(tf.constant(changed.reshape(y_hat.shape)), hyper)
    for stage, stage2 in zip(before, after):  # (weights, means, scales)
      for a, b in zip(stage, stage2):
        a, b = (tf.reshape(t, [30, -1]).numpy() for t in (a, b))
        np.testing.assert_array_equal(a[:p], b[:p])


def test_mixture_combination_weights_the_reference_by_s_and_u():
  """Stage k is the mixture of components 1..k; the reference component's
  weight is scaled by S⁺·U (its logit gains the reliability)."""
  model = train.build("qian2021", dict(TINY, stage_combination="mixture"))
  model = model.latent_codec.y_codec
  m = 16
  parts = [tf.constant(np.concatenate([np.full(m, mean), np.full(m, log_scale),
                                       np.full(m, logit)])[None], tf.float32)
           for mean, log_scale, logit in ((0., 0., 0.), (5., 1., .5),
                                          (-3., 2., -1.))]
  reliability = tf.constant([[math.log(.25)]])
  weights, means, scales = (t.numpy()[0] for t in model._combine(
      parts, reliability))
  expect = np.exp([0., .5 + math.log(.25), -1.])
  np.testing.assert_allclose(weights, np.tile(expect / expect.sum(), (m, 1)),
                             rtol=1e-5)
  np.testing.assert_allclose(means, np.tile([0., 5., -3.], (m, 1)))
  np.testing.assert_allclose(scales, np.tile(np.exp([0., 1., 2.]), (m, 1)),
                             rtol=1e-5)
  single = model._combine(parts[:1])
  assert single[0].shape == (1, m, 1) and float(single[0][0, 0, 0]) == 1.


@pytest.mark.xdist_group("qian2021")  # (on the worker that has its codec)
def test_stages_save_rate_on_the_golden_model(codecs, photo):
  """The rate of ŷ under each stage's parameters (the benchmark's
  figures): every stage present, each a positive rate."""
  model = codecs("qian2021").model
  stage = model.measures(padded(model, photo[:128, :192]))["stage_bits"]
  assert len(stage) == 3 and all(float(b) > 0 for b in stage)


@pytest.mark.parametrize("args", [
    dict(stage_combination="mixture", search_rows=1),
    pytest.param(dict(search_rows=1), marks=pytest.mark.slow),
    pytest.param(dict(reference=False), marks=pytest.mark.slow),
    pytest.param(dict(stage_combination="mixture", reference=False),
                 marks=pytest.mark.slow),
    pytest.param(dict(normalization="gdn"), marks=pytest.mark.slow)])
def test_bounded_search_and_ablations_round_trip(args):
  codec = codec_lib.Codec(train.build("qian2021", dict(TINY, **args)))
  model = codec.model
  image = random_image(70, 100, seed=4)
  x = padded(model, image)
  _, encoded = tf.function(model.encode_latents, autograph=False)(x)
  data = codec.encode(image)["bitstream_bytes"]
  decoded = codec.decode(data)["image"].numpy()
  # A few hundred bytes: allow the range coders' final bytes.
  payload = len(data.numpy()) - bitstream.header_bytes(2)
  assert payload <= 1.01 * float(model.estimate_bits(x)) / 8 + 8
  expected = to_uint8(model.synthesis(encoded["y_hat"])[0])
  np.testing.assert_array_equal(decoded, expected[:70, :100].numpy())


@pytest.mark.parametrize("reference, warm, final", [
    (True, [.3, .3, .4], [.1, .1, .8]), (False, [.3 / .7, .4 / .7], [.1 / .9, .8 / .9])])
def test_stage_weights_switch_after_the_warmup(reference, warm, final):
  model = train.build("qian2021", dict(TINY, reference=reference,
                                       warmup_steps=5))
  model.compile(optimizer=tf.keras.optimizers.Adam())
  for step, expected in ((0, warm), (4, warm), (5, final), (90, final)):
    model.optimizer.iterations.assign(step)
    np.testing.assert_allclose(
        [float(w) for w in model.latent_codec.y_codec._weights()], expected,
        rtol=1e-6)


@pytest.mark.parametrize("channels, size", [(192, 9), (320, 7)])
def test_sizes_whose_search_could_overflow_are_refused(channels, size):
  """The integer search's dot² · 1024 must fit in int64 for the largest
  patches (|ŷ| ≤ 127 per element): 9 × 9 patches at M = 192 and 7 × 7 at
  M = 320 could overflow, so they are refused at construction."""
  with pytest.raises(ValueError, match="exact integer arithmetic allows"):
    models.create("qian2021", latent_channels=channels, reference_size=size)
  models.create("qian2021", latent_channels=channels, reference_size=size - 2)
