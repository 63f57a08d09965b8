"""The global reference model (Qian et al. 2021): a causal search that finds
exact repeats, causal stages, exact serial coding (full and bounded search,
the ablations), SavedModel round trips in a fresh process."""

import numpy as np
import pytest
import tensorflow as tf

from tflic import codec as codec_lib
from tflic import export
from tflic import train
from tflic.entropy import global_reference as gr
from tflic.layers.masked_conv import causal_offsets
from tests.conftest import TINY, assert_exact_coding, random_image
from tests.test_savedmodel import _fresh

SEARCH = causal_offsets(3, 3, "A")


@pytest.fixture(scope="module")
def qian_dir(tmp_path_factory):
  model_dir = str(tmp_path_factory.mktemp("qian"))
  train.train("qian2021", dict(TINY, warmup_steps=20), "samples", model_dir,
              steps=40, batch_size=4, patch_size=128, learning_rate=3e-3,
              clip_norm=0, checkpoint_every=40, log_every=40, seed=3)
  return model_dir


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
def test_stages_are_causal(reference):
  model = train.build("qian2021", dict(TINY, reference=reference))
  rng = np.random.default_rng(2)
  y_hat = rng.integers(-4, 5, (1, 5, 6, 16)).astype(np.float32)
  hyper = tf.constant(rng.normal(size=(1, 5, 6, 32)), tf.float32)
  before = model.stages(tf.constant(y_hat), hyper)
  for p in (0, 8, 17, 29):
    changed = y_hat.reshape(1, 30, 16).copy()
    changed[0, p:] = rng.integers(-4, 5, changed[0, p:].shape)
    after = model.stages(tf.constant(changed.reshape(y_hat.shape)), hyper)
    for (mean, precision), (mean2, precision2) in zip(before, after):
      for a, b in ((mean, mean2), (precision, precision2)):
        a, b = (tf.reshape(t, [30, 16]).numpy() for t in (a, b))
        np.testing.assert_array_equal(a[:p], b[:p])


def test_trained_model_codes_exactly_at_the_estimated_rate(qian_dir, photo):
  model = train.load(qian_dir)
  model.freeze()
  x = tf.cast(codec_lib.pad_to_multiple(photo, 64), tf.float32)[None] / 255.
  assert_exact_coding(model, x)
  stage = [float(b) for b in model.stage_bits(x)]
  assert all(b > 0 for b in stage)


@pytest.mark.parametrize("args", [dict(search_rows=1), dict(reference=False),
                                  dict(normalization="gdn")])
def test_bounded_search_and_ablations_round_trip(args):
  model = train.build("qian2021", dict(TINY, **args))
  codec = codec_lib.Codec(model)
  image = random_image(70, 100, seed=4)
  data = codec.encode(image)["bitstream_bytes"]
  decoded = codec.decode(data)["image"].numpy()
  x = tf.cast(codec_lib.pad_to_multiple(image, 64), tf.float32)[None] / 255.
  _, encoded = tf.function(model.encode_latents)(x)
  expected = codec_lib.to_uint8(model.synthesis(encoded["y_hat"])[0])
  np.testing.assert_array_equal(decoded, expected[:70, :100].numpy())


@pytest.mark.parametrize("search_rows", [0, 1])
def test_savedmodel_in_a_fresh_process(qian_dir, tmp_path, search_rows):
  path = export.export(train.load(qian_dir, search_rows=search_rows),
                       str(tmp_path / "qian" / "1"), name="qian2021")
  library = codec_lib.SavedCodec(path)
  image = random_image(70, 150, seed=5)
  expected = library.encode(image)
  data, decoded = _fresh(path, image, "tf2", tmp_path)
  assert data == expected
  np.testing.assert_array_equal(decoded, library.decode(expected))


@pytest.mark.parametrize("reference, warm, final", [
    (True, [.3, .3, .4], [.1, .1, .8]), (False, [.3 / .7, .4 / .7], [.1 / .9, .8 / .9])])
def test_stage_weights_switch_after_the_warmup(reference, warm, final):
  model = train.build("qian2021", dict(TINY, reference=reference,
                                       warmup_steps=5))
  model.compile(optimizer=tf.keras.optimizers.Adam())
  for step, expected in ((0, warm), (4, warm), (5, final), (90, final)):
    model.optimizer.iterations.assign(step)
    np.testing.assert_allclose([float(w) for w in model._weights()], expected,
                               rtol=1e-6)
