"""One model for every rate (gain units, Cui et al. 2021): the quality knob
orders rate and quality, every quality codes exactly and its file carries
it, a forged quality is refused, training draws a level per batch, and a
fixed-rate run starts a variable-rate one."""

import numpy as np
import pytest
import tensorflow as tf

from tflic import bitstream
from tflic import codec as codec_lib
from tflic import metrics
from tflic import models
from tflic import train
from tflic.layers import gain_units
from tests.golden import make as golden
from tests.conftest import TINY, padded, random_image, variants

LMBDAS = [.002, .01, .05]


def test_gains_start_on_the_high_rate_step_and_interpolate():
  units = gain_units.GainUnits(LMBDAS, reference=.01)
  y = tf.ones([1, 2, 2, 4])
  units(y, 0.)
  for level, lmbda in enumerate(LMBDAS):
    np.testing.assert_allclose(units(y, float(level))[0, 0, 0],
                               np.sqrt(lmbda / .01), rtol=1e-6)
    np.testing.assert_allclose(units.inverse(units(y, float(level)),
                                             float(level)), y, rtol=1e-6)
  # Between levels: the geometric mean at the half (eq. 9).
  np.testing.assert_allclose(units(y, .5)[0, 0, 0], np.sqrt(np.sqrt(
      LMBDAS[0] * LMBDAS[1]) / .01), rtol=1e-5)
  with pytest.raises(ValueError, match="increasing"):
    gain_units.GainUnits([.01, .002])


@pytest.mark.parametrize("variant", variants(["hyperprior_vr",
                                               "cheng2020_vr"]))
def test_every_quality_codes_exactly_and_the_file_says_which(codecs, variant,
                                                             photo):
  codec = codecs(variant)
  model = codec.model
  image = photo[:128, :192]
  sizes, qualities = [], []
  for quality in (0., 30., 50., 100.):
    data = codec.encode_at_quality(image, quality)["bitstream_bytes"].numpy()
    decoded = codec.decode(data)["image"].numpy()
    # The decoder needs nothing but the file: the quality is in it.
    _, _, streams, _ = bitstream.unpack(data, codec.model_id, model.num_streams)
    code = int.from_bytes(streams[0].numpy(), "big")
    assert code == round(quality / 100 * 2 * 4096)
    sizes.append(len(data))
    qualities.append(metrics.psnr(image, decoded))
  assert sizes == sorted(sizes) and sizes[0] < sizes[-1], sizes
  assert codec.encode(image)["bitstream_bytes"].numpy() == (
      codec.encode_at_quality(image, 50.)["bitstream_bytes"].numpy())
  x = padded(model, image)
  encode = tf.function(model.encode_latents, autograph=False)
  decode = tf.function(model.decode_latents, autograph=False)
  for level in (0., .37, 2.):
    streams, encoded = encode(x, tf.constant(level))
    decoded = decode(streams, *x.shape[1:3])
    for name in encoded:
      np.testing.assert_array_equal(encoded[name], decoded[name])


@pytest.mark.xdist_group("hyperprior_vr")  # (on the worker that has its codec)
def test_a_forged_quality_is_refused(codecs, photo):
  codec = codecs("hyperprior_vr")
  data = codec.encode(photo[:64, :64])["bitstream_bytes"].numpy()
  height, width, streams, check = bitstream.unpack(data, codec.model_id,
                                                   codec.model.num_streams)
  for quality, message in ((b"\x00", "2 bytes"), (b"\xff\xff", "beyond")):
    forged = bitstream.pack(codec.model_id, height, width,
                            [quality] + streams[1:], check)
    with pytest.raises(bitstream.BitstreamError, match=message):
      bitstream.raise_bitstream_errors(
          lambda: codec.decode(forged)["image"].numpy())


def test_training_draws_a_level_and_its_lambda():
  model = models.create("hyperprior", lmbdas=LMBDAS, **TINY)
  x = tf.random.stateless_uniform([2, 64, 64, 3], [1, 2])
  losses = [float(model.rate_distortion(x, False, level)[0])
            for level in range(3)]
  terms = [model.rate_distortion(x, False, level)[1] for level in range(3)]
  for loss, term, lmbda in zip(losses, terms, LMBDAS):
    assert loss == pytest.approx(float(term["bpp"]) + lmbda * float(
        term["mse"]), rel=1e-5)
  model.compile(optimizer=tf.keras.optimizers.Adam(1e-3))
  logs = model.train_step(x)
  assert np.isfinite(float(logs["loss"]))
  assert models.create("hyperprior", **TINY).get_config().get("lmbdas") is None


def test_a_fixed_rate_run_starts_a_variable_rate_one(trained_dir, exported_dir,
                                                     tmp_path):
  """--init_from: the transforms and entropy model come from a fixed-rate
  run (checkpoint or SavedModel); the gains start at 1 for its λ."""
  fixed = train.load(trained_dir)
  for source in (trained_dir, exported_dir):
    model = train.build("hyperprior", dict(
        train.read_config(trained_dir)["args"], lmbdas=LMBDAS), lmbda=.01)
    changed, total = train.load_weights(model, source)
    assert changed == total - 2  # all but the gains
    for a, b in zip(fixed.trainable_variables,
                    [v for v in model.trainable_variables
                     if "gain" not in v.name]):
      np.testing.assert_array_equal(a.numpy(), b.numpy())
    y = fixed.latent(padded(fixed, random_image(64, 64)))
    np.testing.assert_allclose(model.latent(padded(model, random_image(
        64, 64)), 1.), y, rtol=1e-6)
  # Another architecture (a weight of another shape), or a checkpoint
  # without any of the model's weights: an error that names the source.
  with pytest.raises(ValueError, match="--init_from=.*incompatible"):
    train.load_weights(train.build("joint", TINY), trained_dir)
  other = tf.train.Checkpoint(other=tf.Variable(1.)).save(
      str(tmp_path / "other"))
  with pytest.raises(ValueError, match="--init_from=.*holds no model"):
    train.load_weights(train.build("joint", TINY), other)


@pytest.mark.xdist_group("hyperprior_vr")  # (on the worker that has its codec)
def test_a_variable_rate_model_gains_levels_at_either_end(codecs, exports):
  """--init_from a SavedModel with fewer levels: the shared levels keep their
  gains exactly; a new level between or beyond them is linear in log λ."""
  source = codecs("hyperprior_vr").model.gain_units
  lmbdas = [.0005, .002, .005, .01, .05, .1]
  name, args = golden.VARIANTS["hyperprior_vr"]
  model = train.build(name, dict(args, lmbdas=lmbdas), lmbda=.01)
  train.load_weights(model, exports["hyperprior_vr"])
  for table in ("log_gain", "log_inverse_gain"):
    old = getattr(source, table).numpy().astype(np.float64)
    new = getattr(model.gain_units, table).numpy()
    np.testing.assert_array_equal(new[[1, 3, 4]], old)
    log = np.log(lmbdas)
    def along(a, b, x):  # the line through old levels a, b, at λ x
      return old[a] + (old[b] - old[a]) * (x - np.log(LMBDAS[a])) / (
          np.log(LMBDAS[b]) - np.log(LMBDAS[a]))
    np.testing.assert_allclose(new[0], along(0, 1, log[0]), rtol=1e-5)
    np.testing.assert_allclose(new[2], along(0, 1, log[2]), rtol=1e-5)
    np.testing.assert_allclose(new[5], along(1, 2, log[5]), rtol=1e-5)
  assert not np.array_equal(model.gain_units.log_gain.numpy()[0],
                            model.gain_units.log_gain.numpy()[1])


@pytest.mark.slow
@pytest.mark.parametrize("name", models.names())
def test_every_model_family_codes_every_quality(name):
  """Gain units on every registered model (tiny, untrained but for one
  step): a training step at a drawn level is finite, and files at quality
  0, 50 and 100 carry it, differ, and decode through the decoder's latent
  check (a `BitstreamError` otherwise). (Their sizes need not grow with
  it before training.)"""
  tf.keras.utils.set_random_seed(1)
  architecture = models.architecture(name)
  args = {k: v for k, v in dict(TINY, mixture_components=2, num_slices=4,
                                max_support_slices=2).items()
          if k in architecture}
  model = train.build(name, dict(args, lmbdas=LMBDAS))
  model.compile(optimizer=tf.keras.optimizers.Adam(1e-3))
  assert np.isfinite(float(model.train_step(tf.random.stateless_uniform(
      [2, 64, 64, 3], [1, 2]))["loss"]))
  codec = codec_lib.Codec(model)
  image = random_image(40, 56, 3)
  files = []
  for quality in (0., 50., 100.):
    data = codec.encode_at_quality(image, quality)["bitstream_bytes"]
    assert codec.decode(data)["image"].shape == image.shape
    streams = bitstream.unpack(data, codec.model_id, model.num_streams)[2]
    assert int.from_bytes(streams[0].numpy(), "big") == round(
        quality / 100 * 2 * 4096)
    files.append(data.numpy())
  assert len(set(files)) == 3
