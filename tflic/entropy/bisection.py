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
    rows, self._limit = binary_table(levels, precision)
    self.levels = levels
    self.table = tf.constant(rows)

  def _row(self, p_left):
    logit = tf.math.log(p_left) - tf.math.log1p(-p_left)
    logit = tf.clip_by_value(logit, -self._limit, self._limit)
    scaled = (logit + self._limit) * ((self.levels - 1) / (2. * self._limit))
    return tf.cast(tf.round(scaled), tf.int32)

  def _bisect(self, handle, weights, means, scales, symbols=None):
    """The bisection shared by encoder (symbols given) and decoder."""
    shape = tf.shape(means)[:-1]
    a = tf.fill(shape, self.low)
    b = tf.fill(shape, self.high + 1)
    lower_a, upper_a = tf.zeros(shape), tf.ones(shape)
    lower_b, upper_b = tf.ones(shape), tf.zeros(shape)
    for _ in range(self.steps):
      m = (a + b) // 2
      lower_m, upper_m = (
          # low < m <= high, so m − ½ is never at an edge: plain tails.
          tf.reduce_sum(weights * t, -1) for t in mixture.tails(
              tf.cast(m, means.dtype)[..., None] - .5, means, scales))
      left = mixture.interval_mass(lower_a, upper_a, lower_m, upper_m)
      whole = mixture.interval_mass(lower_a, upper_a, lower_b, upper_b)
      p_left = tf.where(whole > 1e-30,
                        tf.clip_by_value(left / whole, 0., 1.), .5)
      row = self._row(p_left)
      if symbols is None:
        handle, bit = tfc.entropy_decode_index(handle, row, shape, tf.int32)
        right = bit > 0
      else:
        right = symbols >= m
        handle = tfc.entropy_encode_index(handle, row, tf.cast(right, tf.int32))
      a, b = tf.where(right, m, a), tf.where(right, b, m)
      lower_a, upper_a = (tf.where(right, new, old) for new, old in
                          ((lower_m, lower_a), (upper_m, upper_a)))
      lower_b, upper_b = (tf.where(right, old, new) for new, old in
                          ((lower_m, lower_b), (upper_m, upper_b)))
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
