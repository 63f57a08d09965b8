"""Discretized Gaussian mixture of Cheng et al. 2020 (eq. 9):
p(ŷ) = Σ_k w_k (N(μ_k, σ_k²) * U(−½, ½))(ŷ), on the clipped latent range
[LOW, HIGH] = [−255, 256]: the lowest value takes all mass below it (CDF 0
below its lower edge) and the highest all mass above it (CDF 1 above)."""

import math

import tensorflow as tf

LOW, HIGH = -255, 256
_SQRT_HALF = math.sqrt(.5)


def tails(t, means, scales):
  """(Φ(z), 1 − Φ(z)) at z = (t − μ)/σ, each from erfc so that neither loses
  precision in its tail."""
  z = (t - means) / scales
  e = .5 * tf.math.erfc(tf.abs(z) * _SQRT_HALF)
  negative = z < 0
  return tf.where(negative, e, 1. - e), tf.where(negative, 1. - e, e)


def interval_mass(lower_a, upper_a, lower_b, upper_b):
  """P(a ≤ X < b) from (Φ, 1 − Φ) at both ends, without cancellation: the
  difference of the smaller tails, or 1 minus both outer tails."""
  return tf.where(lower_b < .5, lower_b - lower_a,
                  tf.where(upper_a < .5, upper_a - upper_b,
                           1. - lower_a - upper_b))


def edge_tails(t, means, scales, low=LOW, high=HIGH):
  """`tails`, with the clipping edges: CDF 0 below low − ½, 1 above high + ½."""
  lower, upper = tails(t, means, scales)
  below, above = t <= low - .5, t >= high + .5
  lower = tf.where(below, 0., tf.where(above, 1., lower))
  upper = tf.where(below, 1., tf.where(above, 0., upper))
  return lower, upper


def likelihood(values, weights, means, scales, low=LOW, high=HIGH):
  """p(values) for values [...] and mixture parameters [..., K]: the mass of
  [v − ½, v + ½) under each component (edges as above), weighted."""
  v = tf.expand_dims(values, -1)
  mass = interval_mass(*edge_tails(v - .5, means, scales, low, high),
                       *edge_tails(v + .5, means, scales, low, high))
  return tf.reduce_sum(weights * mass, -1)
