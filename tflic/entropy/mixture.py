"""Discretized Gaussian mixture of Cheng et al. 2020 (eq. 9):
p(ŷ) = Σ_k w_k (N(μ_k, σ_k²) * U(−½, ½))(ŷ), on the clipped latent range
[LOW, HIGH] = [−255, 256]: the lowest value takes all mass below it (CDF 0
below its lower edge) and the highest all mass above it (CDF 1 above)."""

import math

import tensorflow as tf
import tensorflow_compression as tfc

LOW, HIGH = -255, 256
SCALE_MIN = .11  # the smallest σ, as the scale grid's (`integer_gaussian`)
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


def quantize(y):
  """ŷ = round(y), clipped to [LOW, HIGH], with straight-through gradients:
  what the context models see in training and in coding alike."""
  clipped = tf.clip_by_value(y, LOW, HIGH)
  return clipped + tf.stop_gradient(tf.round(clipped) - clipped)


def symbols(y):
  """The integers ŷ of `quantize` (int32)."""
  return tf.cast(tf.round(tf.clip_by_value(y, LOW, HIGH)), tf.int32)


def noisy(y):
  """The training stand-in for ŷ in the rate term: y clipped to the coded
  range (as coding clips it), plus uniform noise. Beyond the range the rate
  is that of the edge symbol, which takes the tail mass, not the ~30 bits of
  a zero likelihood without a gradient."""
  clipped = tf.clip_by_value(y, LOW, HIGH)
  return clipped + tf.random.uniform(tf.shape(y), -.5, .5)


def bits(values, weights, means, scales):
  """−log2 p(values) summed per image (p bounded below by 1e-9)."""
  p = likelihood(values, weights, means, scales)
  return -tf.reduce_sum(tf.math.log(tfc.lower_bound(p, 1e-9)),
                        [1, 2, 3]) / tf.math.log(2.)


def scale(log_scale):
  """σ = exp(log σ), bounded below like the tfc examples' smallest scale."""
  return tfc.lower_bound(tf.exp(log_scale), SCALE_MIN)


def softmax(logits):
  """Softmax over the last axis as exp/sum."""
  e = tf.exp(logits - tf.reduce_max(logits, -1, keepdims=True))
  return e / tf.reduce_sum(e, -1, keepdims=True)


def distribution(split, params):
  """Float parameters → (weights, means, scales), each [..., M, K], of the
  mixture that `split` cuts them into (no logits: one component)."""
  logits, means, log_scales = split(params)
  weights = tf.ones_like(means) if logits is None else softmax(logits)
  return weights, means, scale(log_scales)


def mixture_split(components, channels):
  """Cheng et al. 2020, eq. 10: the entropy parameters [..., 3KN] are K
  weight logits, K means and K log-scales per channel (blocks of K·N; K = 1:
  no logits) → (logits or None, means, log σ), each [..., N, K]."""
  def split(params):
    outer = params.shape[:-1]  # static in the coding loop: no shape ops
    shape = (outer.as_list() + [channels, components]
             if outer.is_fully_defined()
             else tf.concat([tf.shape(params)[:-1], [channels, components]], 0))
    if components == 1:
      mean, log_scale = (tf.reshape(t, shape) for t in tf.split(params, 2, -1))
      return None, mean, log_scale
    logits, means, log_scales = (
        tf.reshape(t, shape) for t in tf.split(params, 3, -1))
    return logits, means, log_scales
  return split
