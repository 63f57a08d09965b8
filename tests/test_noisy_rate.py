"""The training form of the rate: ỹ = y + u and −log2 p(ỹ), optionally with
each likelihood bounded below as CompressAI's."""

import numpy as np
import tensorflow as tf
import tensorflow_compression as tfc

from tflic.entropy.noisy_rate import noisy_rate
from tflic.latent_codecs.gaussian_conditional import GaussianConditional


def test_bound_caps_an_outliers_bits_and_its_gradient():
  """Under N(0, 1) * U, y = 0 costs about 1 bit and y = 12 about 107; with
  the bound 1e-9 the outlier costs −log2(1e-9) ≈ 29.9 bits and pulls the
  scale with almost no gradient, the inlier as before."""
  y = tf.constant([[0.], [12.]])
  scale = tf.Variable(1.)
  results = {}
  for bound in (0., 1e-9):
    tf.random.set_seed(1)
    with tf.GradientTape() as tape:
      noisy, bits = noisy_rate(y, tfc.NoisyNormal(loc=0., scale=scale).log_prob,
                               bound)
      outlier = bits[1]
    results[bound] = bits.numpy(), tape.gradient(outlier, scale).numpy()
    np.testing.assert_array_less(np.abs(noisy - y), .5)
  (free, free_grad), (bounded, bounded_grad) = results[0.], results[1e-9]
  assert free[1] > 90 and abs(bounded[1] - 9 * np.log2(10)) < 1e-3
  np.testing.assert_allclose(free[0], bounded[0])
  assert free_grad < -100 and abs(bounded_grad) < 1e-6


def test_noise_quantization_rates_the_latent_it_returns():
  """With quantization="noise" the ŷ that g_s gets is the ỹ whose bits are
  counted (CompressAI's form), not another draw."""
  codec = GaussianConditional(scale="sigma", quantization="noise")
  y = tf.random.stateless_normal([2, 4, 4, 3], [1, 2]) * 3
  psi = tf.concat([tf.zeros_like(y), tf.ones_like(y) * 2], -1)  # μ 0, σ 2
  latents, bits = codec(y, training=True, side=psi)
  y_hat = latents["y_hat"]
  np.testing.assert_array_less(np.abs(y_hat - y), .5 + 1e-6)
  expected = -tf.reduce_sum(tfc.NoisyNormal(loc=0., scale=2.).log_prob(y_hat),
                            (1, 2, 3)) / np.log(2.)
  np.testing.assert_allclose(bits, expected, rtol=1e-4)
