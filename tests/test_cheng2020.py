"""The cheng2020 model: transforms of the paper's shapes, the mixture's
parameters, the authors' entropy-parameter widths, the training rate at
the edges of the coded range (exact coding: tests/test_contract.py)."""

import numpy as np
import tensorflow as tf

from tflic import models
from tflic.entropy import mixture

N = 8


def test_shapes_and_mixture():
  model = models.create("cheng2020", num_filters=N)
  x = tf.zeros([2, 64, 128, 3])
  y = model.analysis(x)
  z = model.latent_codec.h_a(y)
  assert y.shape == (2, 4, 8, N) and z.shape == (2, 1, 2, N)
  assert model.latent_codec.h_s(z).shape == (2, 4, 8, 2 * N)
  assert model.synthesis(y).shape == x.shape
  params = tf.random.normal([5, 3 * 3 * N])
  split = model.latent_codec.y_codec.parameters.split
  weights, means, scales = mixture.distribution(split, params)
  assert weights.shape == means.shape == scales.shape == (5, N, 3)
  np.testing.assert_allclose(tf.reduce_sum(weights, -1), 1., rtol=1e-6)
  assert float(tf.reduce_min(scales)) >= np.float32(.11)
  assert model.pad_mode == "reflect" and model.multiple == 64
  single = models.create("cheng2020", num_filters=N, mixture_components=1)
  weights, _, _ = mixture.distribution(
      single.latent_codec.y_codec.parameters.split, tf.random.normal([5, 2 * N]))
  assert weights.shape == (5, N, 1) and float(tf.reduce_min(weights)) == 1.


def test_entropy_parameters_have_the_authors_widths():
  """1×1 convolutions 4N → 640 → 640 → 9N for N = 192, K = 3 (the authors'
  network; 2 010 048 parameters)."""
  model = models.create("cheng2020")
  network = model.latent_codec.y_codec.parameters.networks[0]
  network.build([None, None, None, 4 * 192])
  assert [layer.filters for layer in network.layers] == [640, 640, 9 * 192]
  assert network.count_params() == (768 * 640 + 640 + 640 * 640 + 640 +
                                    640 * 1728 + 1728) == 2010048


def test_training_rate_beyond_the_coded_range_is_the_edge_symbols():
  """y beyond [−255, 256] costs in training what its clipped symbol costs in
  coding, with a gradient; not the ~30 bits of a zero likelihood."""
  distribution = [tf.ones([1, 1, 1, 1, 1]), tf.fill([1, 1, 1, 1, 1], 250.),
                  tf.fill([1, 1, 1, 1, 1], 3.)]
  coded = float(mixture.bits(tf.fill([1, 1, 1, 1], 256.),
                             *distribution)[0])
  for y in (256.4, 1000.):
    with tf.GradientTape() as tape:
      tape.watch(distribution)
      trained = mixture.bits(mixture.noisy(tf.fill([1, 1, 1, 1], y)),
                             *distribution)[0]
    assert coded - 1 < float(trained) < coded + 1, (y, float(trained), coded)
    assert float(tf.abs(tape.gradient(trained, distribution[1]))) > 0
