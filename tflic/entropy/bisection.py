"""Exact range coding of integers under per-element distributions (e.g. the
Gaussian mixture of Cheng et al. 2020) with a range coder whose CDF table is
fixed when the stream is opened (DESIGN.md §4, way (b)).

Each symbol in [low, high] is coded as the bits of a bisection of that interval
(log2(high − low + 1) decisions). Decision "left half" has probability
P(a ≤ ŷ < m) / P(a ≤ ŷ < b), computed from the mixture CDF at the midpoint only
(the ends carry over), and is coded with the nearest row of a fixed table of
binary distributions whose probabilities are evenly spaced in logit space.
Encoder and decoder compute the same row index from the same floats, so the
stream stays exact; the cost is the small gap between a probability and its row.
"""

import math

import numpy as np
import tensorflow as tf
import tensorflow_compression as tfc

from tflic.entropy import mixture

_SQRT_HALF = math.sqrt(.5)
_TINY = 1e-30  # masses below this count as equal: p = ½


def binary_table(levels, precision):
  """[levels, 4] int32 rows [precision, 0, q, 2^precision], q/2^precision =
  sigmoid(l) for l evenly spaced over the logits the precision can express."""
  one = 1 << precision
  limit = math.log(one - 1)
  logits = np.linspace(-limit, limit, levels)
  q = np.clip(np.round(one / (1. + np.exp(-logits))), 1, one - 1).astype(np.int32)
  rows = np.zeros((levels, 4), np.int32)
  rows[:, 0], rows[:, 2], rows[:, 3] = precision, q, one
  return rows, limit


class BisectionCoder:
  """Codes integer symbols [N] in [low, high] under Gaussian mixtures [N, K]
  (K = 1: a single Gaussian) through a stateful range coder handle."""

  def __init__(self, low=mixture.LOW, high=mixture.HIGH, levels=4096,
               precision=16):
    self.low, self.high = low, high
    self.steps = int(round(math.log2(high - low + 1)))
    if 2 ** self.steps != high - low + 1:
      raise ValueError("high - low + 1 must be a power of two")
    rows, limit = binary_table(levels, precision)
    # row = round((logit + limit) · slope), as floor(logit · slope + offset).
    self._slope = (levels - 1) / (2. * limit)
    self._offset = limit * self._slope + .5
    self._top = levels - .5
    self.table = tf.constant(rows)

  def _bisect(self, handle, weights, means, scales, symbols=None):
    """The bisection shared by encoder (symbols given) and decoder.

    Per step only the midpoint's tails are evaluated, as (2Φ, 2(1 − Φ)) from
    one erfc; the interval [a, b) carries its ends' tails. The cost is the
    number of ops (DESIGN.md §4), so each step is kept to a few dozen."""
    k = means.shape[-1]
    if k == 1:  # no weights, no component axis
      means, scales = means[..., 0], scales[..., 0]
    center = means + .5  # the boundary below m is m − ½
    rate = _SQRT_HALF / scales

    def tails(m):
      m = tf.cast(m, means.dtype)
      z = ((m[..., None] if k > 1 else m) - center) * rate
      e = tf.math.erfc(tf.abs(z))
      far, negative = 2. - e, z < 0
      lower, upper = tf.where(negative, e, far), tf.where(negative, far, e)
      if k > 1:
        lower = tf.reduce_sum(weights * lower, -1)
        upper = tf.reduce_sum(weights * upper, -1)
      return lower, upper

    def mass(lower_a, upper_a, lower_b, upper_b):
      # The difference of the smaller tails (no cancellation in either tail).
      return tf.where(lower_b < 1., lower_b - lower_a, upper_a - upper_b)

    shape = tf.shape(center)[:1]
    a = tf.fill(shape, self.low)
    lower_a, upper_a = tf.zeros(shape), tf.fill(shape, 2.)
    lower_b, upper_b = upper_a, lower_a
    for i in range(self.steps):
      m = a + 2 ** (self.steps - 1 - i)
      lower_m, upper_m = tails(m)
      left = tf.maximum(mass(lower_a, upper_a, lower_m, upper_m), _TINY)
      logit = tf.math.log(left) - tf.math.log(
          tf.maximum(mass(lower_m, upper_m, lower_b, upper_b), _TINY))
      row = tf.cast(tf.clip_by_value(logit * self._slope + self._offset,
                                     0., self._top), tf.int32)
      if symbols is None:
        handle, bit = tfc.entropy_decode_index(handle, row, shape, tf.int32)
        right = bit > 0
      else:
        right = symbols >= m
        handle = tfc.entropy_encode_index(handle, row, tf.cast(right, tf.int32))
      a = tf.where(right, m, a)
      lower_a, upper_a = (tf.where(right, lower_m, lower_a),
                          tf.where(right, upper_m, upper_a))
      lower_b, upper_b = (tf.where(right, lower_b, lower_m),
                          tf.where(right, upper_b, upper_m))
    return handle, a

  def encode(self, handle, symbols, weights, means, scales):
    """symbols [N] int32 (clipped to [low, high] by the caller) → handle."""
    return self._bisect(handle, weights, means, scales, symbols)[0]

  def decode(self, handle, weights, means, scales):
    """→ (handle, symbols [N] int32)."""
    return self._bisect(handle, weights, means, scales)

  def ideal_bits(self, symbols, weights, means, scales):
    """−log2 p(symbols), the rate the coder approaches."""
    p = mixture.likelihood(tf.cast(symbols, means.dtype), weights, means, scales,
                           self.low, self.high)
    return -tf.reduce_sum(tf.math.log(p)) / math.log(2.)
