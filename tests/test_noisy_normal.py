"""The training likelihood of the Gaussian conditional against
tensorflow-compression's `NoisyNormal` computed in float64."""

import numpy as np
import tensorflow as tf
import tensorflow_compression as tfc

from tflic.entropy import integer_gaussian as ig
from tflic.entropy.noisy_normal import TAIL, log_likelihood


def _values_and_gradients(fn, x, scale, dtype):
  x, scale = tf.constant(x, dtype), tf.constant(scale, dtype)
  with tf.GradientTape() as tape:
    tape.watch([x, scale])
    log_p = fn(x, scale)
  return [log_p] + tape.gradient(log_p, [x, scale])


def test_equals_noisy_normal_over_the_scale_grid_and_far_tails():
  """Every fifth σ of the coder's grid (0.11 to 256), x from −3000 to 3000,
  and either side of the switch to the asymptotic series (a = (|x| − ½)/σ
  = TAIL): log p and both gradients within 3e-5 (relative, or absolute
  below 1) of float64, as close as NoisyNormal's own float32 values are;
  finite everywhere."""
  scales = ig.scales()[::5]
  x = np.concatenate([np.linspace(-3000., 3000., 1201),
                      np.linspace(-3., 3., 121), [.5, -.5]])
  x, scale = np.meshgrid(x, scales, indexing="ij")
  crossing = np.array([-1., 1., 0.]) * 1e-3 + TAIL
  x = np.concatenate([x.ravel(), (crossing[:, None] * scales + .5).ravel()])
  scale = np.concatenate([scale.ravel(), np.tile(scales, 3)])
  reference = _values_and_gradients(
      lambda x, s: tfc.NoisyNormal(loc=0., scale=s).log_prob(x), x, scale,
      tf.float64)
  ours = _values_and_gradients(log_likelihood, x, scale, tf.float32)
  for name, value, expected in zip(("log p", "d/dx", "d/dσ"), ours,
                                   reference):
    value, expected = value.numpy(), expected.numpy()
    assert np.isfinite(value).all(), name
    error = np.abs(value - expected) / np.maximum(np.abs(expected), 1.)
    assert error.max() < 3e-5, (name, error.max())
  # The far tail is reached: log p ≈ −a²/2, not a clipped value.
  assert ours[0].numpy().min() < -1e6
