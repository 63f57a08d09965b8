"""The cheng2020 model: transforms of the paper's shapes, exact serial coding
of the Gaussian mixture (K = 3) and of the single Gaussian (K = 1), any size
(reflect padding), rate close to the model's estimate, the parallel encoder
(the SavedModel in fresh processes: test_portability)."""

import numpy as np
import pytest
import tensorflow as tf

from tflic import codec as codec_lib
from tflic import models
from tflic import train
from tflic.models import context_model
from tflic.models.context_model import quantize
from tests.conftest import (assert_exact_coding,
                            assert_parallel_encoder_matches_serial,
                            random_image)

N = 8


def _coding(model):
  """(Codec, the encoder's ŷ of a padded image: one graph for every size)."""
  latents = tf.function(lambda x: quantize(model.analysis(x)), input_signature=[
      tf.TensorSpec([1, None, None, 3], tf.float32)])
  return codec_lib.Codec(model), latents


@pytest.fixture(scope="module")
def trained(cheng_dir):
  """K = 3, briefly trained."""
  return _coding(train.load(cheng_dir))


@pytest.fixture(scope="module")
def single_gaussian():
  """K = 1, random weights."""
  tf.keras.utils.set_random_seed(4)
  return _coding(train.build("cheng2020", dict(num_filters=N,
                                               mixture_components=1)))


def padded(model, image):
  """The model's input for a uint8 image, padded as the codec pads it."""
  x = codec_lib.pad_to_multiple(image, model.multiple, model.pad_mode)
  return tf.cast(x, tf.float32)[None] / 255.


def test_shapes_and_mixture():
  model = models.create("cheng2020", num_filters=N)
  x = tf.zeros([2, 64, 128, 3])
  y = model.analysis(x)
  z = model.hyper_analysis(y)
  assert y.shape == (2, 4, 8, N) and z.shape == (2, 1, 2, N)
  assert model.hyper_synthesis(z).shape == (2, 4, 8, 2 * N)
  assert model.synthesis(y).shape == x.shape
  params = tf.random.normal([5, 3 * 3 * N])
  weights, means, scales = model.distribution(params)
  assert weights.shape == means.shape == scales.shape == (5, N, 3)
  np.testing.assert_allclose(tf.reduce_sum(weights, -1), 1., rtol=1e-6)
  assert float(tf.reduce_min(scales)) >= np.float32(.11)
  assert model.pad_mode == "reflect" and model.multiple == 64
  single = models.create("cheng2020", num_filters=N, mixture_components=1)
  weights, _, _ = single.distribution(tf.random.normal([5, 2 * N]))
  assert weights.shape == (5, N, 1) and float(tf.reduce_min(weights)) == 1.


def test_entropy_parameters_have_the_authors_widths():
  """1×1 convolutions 4N → 640 → 640 → 9N for N = 192, K = 3 (the authors'
  network; 2 010 048 parameters)."""
  model = models.create("cheng2020")
  network = model.entropy_parameters
  network.build([None, None, None, 4 * 192])
  assert [layer.filters for layer in network.layers] == [640, 640, 9 * 192]
  assert network.count_params() == (768 * 640 + 640 + 640 * 640 + 640 +
                                    640 * 1728 + 1728) == 2010048


def test_training_rate_beyond_the_coded_range_is_the_edge_symbols():
  """y beyond [−255, 256] costs in training what its clipped symbol costs in
  coding, with a gradient; not the ~30 bits of a zero likelihood."""
  distribution = [tf.ones([1, 1, 1, 1, 1]), tf.fill([1, 1, 1, 1, 1], 250.),
                  tf.fill([1, 1, 1, 1, 1], 3.)]
  coded = float(context_model.bits(tf.fill([1, 1, 1, 1], 256.),
                                   *distribution)[0])
  for y in (256.4, 1000.):
    with tf.GradientTape() as tape:
      tape.watch(distribution)
      trained = context_model.bits(context_model.noisy(tf.fill([1, 1, 1, 1],
                                                               y)),
                                   *distribution)[0]
    assert coded - 1 < float(trained) < coded + 1, (y, float(trained), coded)
    assert float(tf.abs(tape.gradient(trained, distribution[1]))) > 0


def test_decoder_gets_the_encoders_latents(trained, photo):
  codec, latents = trained
  model = codec.model
  x = padded(model, photo)
  encoded = assert_exact_coding(model, x)
  np.testing.assert_array_equal(encoded["y_hat"].numpy(), latents(x).numpy())


@pytest.mark.parametrize("height, width", [(1, 1), (17, 33), (70, 130)])
@pytest.mark.parametrize("which", [
    "trained", pytest.param("single_gaussian", marks=pytest.mark.slow)])
def test_any_size_round_trips(which, height, width, request):
  codec, latents = request.getfixturevalue(which)
  image = random_image(height, width, seed=width)
  data = codec.encode(image)["bitstream_bytes"]
  decoded = codec.decode(data)["image"].numpy()
  assert decoded.shape == (height, width, 3)
  y_hat = latents(padded(codec.model, image))
  expected = codec_lib.to_uint8(codec.model.synthesis(y_hat)[0])
  np.testing.assert_array_equal(decoded, expected[:height, :width].numpy())


@pytest.mark.parametrize("which", [
    "trained", pytest.param("single_gaussian", marks=pytest.mark.slow)])
def test_parallel_encoder_writes_the_serial_encoders_stream(which, request):
  codec, _ = request.getfixturevalue(which)
  assert_parallel_encoder_matches_serial(codec.model,
                                         random_image(130, 200, seed=8))
