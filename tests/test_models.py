"""The models: the registry, their shapes, and training behaviour (the loss
falls, the NaN guard holds, divergence stops without a bad checkpoint)."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_compression as tfc
from tensorflow_compression.python.distributions import helpers

from tflic import codec as codec_lib
from tflic import data
from tflic import models
from tflic import train
from tflic.latent_codecs import factorized
from tflic.layers import integer
from tests.conftest import TINY, random_image


def batch(size=64, count=4, seed=0):
  tf.random.set_seed(seed)
  return next(iter(data.patches("samples", size, count)))


@pytest.mark.parametrize("name", [
    pytest.param("factorized", marks=pytest.mark.slow), "hyperprior"])
def test_training_lowers_the_loss(name):
  tf.keras.utils.set_random_seed(0)
  model = models.create(name, **{k: v for k, v in TINY.items()
                                 if k in models.architecture(name)})
  model.compile(optimizer=tf.keras.optimizers.Adam(3e-3))
  x = batch()
  before, _ = model.rate_distortion(x, training=False)
  # (as train.train: made before the step, which then traces once, not twice)
  model.optimizer.build(model.trainable_variables)
  step = tf.function(model.train_step)
  for _ in range(40):
    step(x)
  after, terms = model.rate_distortion(x, training=False)
  assert float(after) < 0.7 * float(before)
  assert 0 < float(terms["bpp"]) < 24


def test_nonfinite_step_leaves_weights_unchanged():
  model = models.create("hyperprior", **TINY)
  model.compile(optimizer=tf.keras.optimizers.Adam(1e-3))
  x = batch().numpy()
  model(x)
  weights = [w.numpy().copy() for w in model.trainable_variables]
  x[0, 0, 0, 0] = np.nan
  logs = model.train_step(tf.constant(x))
  assert float(logs["nonfinite"]) == 1.
  for w, old in zip(model.trainable_variables, weights):
    np.testing.assert_array_equal(w.numpy(), old)


def test_ms_ssim_objective_trains():
  model = models.create("hyperprior", distortion="ms-ssim", lmbda=10., **TINY)
  model.compile(optimizer=tf.keras.optimizers.Adam(1e-3))
  logs = model.train_step(batch(size=128, count=2))
  assert 0. < float(logs["ms_ssim"]) <= 1. and np.isfinite(float(logs["loss"]))


def test_registry():
  assert models.names() == ["cheng2020", "elic2022", "factorized",
                            "hyperprior", "joint", "ms2020", "qian2021",
                            "wen2019"]
  assert models.architecture("hyperprior") == dict(
      num_filters=192, latent_channels=320, hyper_channels=192, scale="log",
      quantization="round", density_layers=2, hyper_padding="same",
      likelihood_bound=0., gdn="simplified", hyper_activation="relu",
      transform_padding="same")
  assert models.architecture("cheng2020") == dict(
      num_filters=192, mixture_components=3, context="serial")
  with pytest.raises(ValueError, match="unknown model"):
    models.get("nope")
  # A misspelt argument is refused with the known ones, not dropped.
  with pytest.raises(ValueError, match="no argument num_filter .*"
                     "mixture_components, num_filters"):
    models.create("cheng2020", num_filter=128)


@pytest.mark.parametrize("option", [dict(density_layers=4),
                                    dict(hyper_padding="pytorch"),
                                    dict(likelihood_bound=1e-9),
                                    dict(gdn="original"),
                                    dict(hyper_activation="leaky_relu"),
                                    dict(transform_padding="pytorch")])
def test_compressai_options_code_exactly_and_keep_old_identities(option):
  """`density_layers` (ẑ's factorized densities' depth), `hyper_padding`,
  `likelihood_bound`, `gdn`, `hyper_activation` and `transform_padding`
  are part of a hyperprior's identity only when not the default, so models made before them keep theirs; with each, files
  code exactly (CompressAI's form but `gdn` together: the golden variant
  hyperprior_compressai)."""
  default = train.build("hyperprior", TINY)
  assert not set(option) & set(default.get_config())
  tf.keras.utils.set_random_seed(1)
  model = train.build("hyperprior", dict(TINY, **option))
  assert option.items() <= model.get_config().items()
  if "density_layers" in option:
    assert model.latent_codec.z_codec.prior.base.num_filters == (3, 3, 3, 3)
  if "gdn" in option:  # in g_a and g_s, and in the copy that is exported
    for transform in (model.analysis, model.synthesis,
                      model.clone().synthesis):
      forms = {(l.alpha, l.epsilon) for l in transform.submodules
               if isinstance(l, tfc.GDN)}
      assert forms == {(2., .5)}
  if "hyper_activation" in option:  # leaky in h_a, h_s and the integer h_s
    codec_ = model.latent_codec
    for layer in (codec_.h_a.layers[0], codec_.h_s.layers[0]):
      assert float(layer.activation(tf.constant(-1.))) == pytest.approx(-.01)
    assert integer.negative_slope(codec_.h_s.layers[0].activation) == .01
  assert codec_lib.fingerprint(model) != codec_lib.fingerprint(default)
  codec = codec_lib.Codec(model)
  image = random_image(70, 130, 3)
  data_ = codec.encode(image)["bitstream_bytes"]
  # (the decoder checks its latents against the encoder's: an error if not)
  assert codec.decode(data_)["image"].shape == image.shape


def test_training_patches_from_files_and_tfds(tmp_path):
  from PIL import Image  # pylint: disable=import-outside-toplevel
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  Image.fromarray(np.zeros((40, 90, 3), np.uint8)).save(tmp_path / "small.png")
  patches = next(iter(data.patches(str(tmp_path / "*.png"), 64, 2)))
  assert patches.shape == (2, 64, 64, 3)  # smaller images are scaled up
  with tfds.testing.mock_data(num_examples=4):
    patches = next(iter(data.patches("tfds:clic", 64, 3)))
  assert patches.shape == (3, 64, 64, 3) and patches.dtype == tf.float32
  assert 0. <= float(tf.reduce_min(patches)) <= float(tf.reduce_max(patches)) <= 1.
  with pytest.raises(ValueError, match="no image files"):
    data.image_files(str(tmp_path / "*.jpg"))


def test_seeded_patches_do_not_depend_on_the_threads():
  """bin/train --seed gives the same crops in every run: the same batches
  from a map on one thread as on eight."""

  def batches(threads):
    tf.keras.utils.set_random_seed(5)
    options = tf.data.Options()
    options.threading.private_threadpool_size = threads
    return [b.numpy() for b in data.patches("samples", 32, 8).with_options(
        options).take(12)]

  one = batches(1)
  assert all(np.array_equal(a, b) for a, b in zip(one, batches(8)))
  assert not np.array_equal(one[0], one[1])


def test_divergence_stops_training_without_a_bad_checkpoint(tmp_path):
  from tflic import train  # pylint: disable=import-outside-toplevel
  model_dir = str(tmp_path)
  train.train("hyperprior", TINY, "samples", model_dir, steps=4, batch_size=2,
              patch_size=64, learning_rate=1e-3, checkpoint_every=4, log_every=2)
  with pytest.raises(FloatingPointError, match="diverged"):
    train.train("hyperprior", TINY, "samples", model_dir, steps=60, batch_size=2,
                patch_size=64, learning_rate=1e3, clip_norm=0, checkpoint_every=2,
                log_every=2, divergence_factor=1.5)
  checkpoint = tf.train.latest_checkpoint(model_dir)
  model = train.load(model_dir)
  assert all(np.isfinite(v.numpy()).all() for v in model.variables), checkpoint


def test_factorized_four_layer_baseline():
  """SLIMD's baseline (Minnen et al. 2018, ICIP, §2): four 5×5 stride-2
  stages and more code channels than filters (it codes exactly: the "slimd"
  golden variant, tests/test_contract.py)."""
  model = train.build("factorized", dict(num_filters=8, num_layers=4,
                                        latent_channels=12))
  assert [l.kernel_size for l in model.analysis.layers] == [(5, 5)] * 4
  assert model.analysis(tf.zeros([1, 32, 48, 3])).shape == (1, 2, 3, 12)
  with pytest.raises(ValueError, match="num_layers"):
    models.create("factorized", num_layers=5)


def test_every_model_is_transforms_and_a_latent_codec():
  """No model codes by itself: each has a latent codec, and the hyperprior
  models compose a z codec, h_a, h_s and a y codec."""
  from tflic import latent_codecs  # pylint: disable=import-outside-toplevel
  for name in models.names():
    model = models.create(name)
    assert isinstance(model.latent_codec, latent_codecs.LatentCodec), name
    assert not hasattr(model, "encode_y") and not hasattr(model, "coder")
    if name != "factorized":
      assert isinstance(model.latent_codec, latent_codecs.HyperpriorCodec)


@pytest.mark.parametrize("layers", [2, 4])
def test_training_offset_is_the_priors_median(layers):
  """A training step's offsets for rounding ẑ: the medians mod 1, where the
  base density's logit CDF crosses 0, as tensorflow-compression's slower
  search finds them (to its tolerance)."""
  tf.random.set_seed(layers)
  prior = tfc.NoisyDeepFactorized(batch_shape=[16],
                                  num_filters=(3,) * layers)
  for variable in prior.base.variables:  # away from the symmetric start
    variable.assign(variable + tf.random.normal(variable.shape) * 2.)
  offset = factorized.training_offset(prior).numpy()
  assert offset.shape == (16,) and np.abs(offset).max() <= .5
  found = helpers.quantization_offset(prior).numpy()
  assert np.abs((offset - found + .5) % 1 - .5).max() < 1e-3
  with tf.GradientTape() as tape:
    offset = factorized.training_offset(prior)
  assert tape.gradient(offset, prior.base.variables[0]) is None
