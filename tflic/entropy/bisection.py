"""Exact range coding of integers under Gaussian mixtures with integer
parameters (e.g. the mixture of Cheng et al. 2020, eq. 9), with a range coder
whose table is fixed when the stream is opened.

Each symbol in [low, high] is coded as the bits of a bisection of that
interval (log2(high − low + 1) decisions). Decision "left half" has
probability P(a ≤ ŷ < m) / P(a ≤ ŷ < b): the mixture CDF is an integer,
C(t) = Σ_k W_k Φ_k(t) with integer weights W_k and Φ from `CdfTable` (sums in
int64), evaluated at the midpoint only (the ends carry over; the edges take
all tail mass: C(low − ½) = 0, C(high + ½) = Σ W_k). The probability, as a
fixed-point integer, selects by integer comparison the nearest of 4096
binary distributions spaced evenly in logit space (precision 16). Integers
only, so encoder and decoder on any machine select the same rows; the cost is
the small gap between a probability and its row (measured < 0.01 %).
"""

import math

import numpy as np
import tensorflow as tf
import tensorflow_compression as tfc

from tflic.entropy import integer_gaussian as ig
from tflic.entropy import mixture

WEIGHT_BITS = 12  # the largest mixture weight is 2^12
LOGIT_STEP = 1. / 32  # integer logits are in these units (nats)
MAX_COMPONENTS = 8
RATIO_BITS = 63 - 1 - ig.CDF_BITS - WEIGHT_BITS - 3  # 21: no int64 overflow


def binary_table(levels, precision):
  """[levels, 4] int32 rows [precision, 0, q, 2^precision], q/2^precision =
  sigmoid(l) for l evenly spaced over the logits the precision can express;
  and the thresholds [levels − 1] between them (in probability, units of
  2^−RATIO_BITS): row j is the nearest in logit to probabilities in
  [threshold_{j−1}, threshold_j)."""
  one = 1 << precision
  limit = math.log(one - 1)
  logits = np.linspace(-limit, limit, levels)
  q = np.clip(np.round(one / (1. + np.exp(-logits))), 1, one - 1).astype(np.int32)
  rows = np.zeros((levels, 4), np.int32)
  rows[:, 0], rows[:, 2], rows[:, 3] = precision, q, one
  middle = (logits[1:] + logits[:-1]) / 2
  thresholds = np.ceil((1 << RATIO_BITS) / (1. + np.exp(-middle)))
  return rows, thresholds.astype(np.int64)


def logit_weights():
  """W(d) = round(2^WEIGHT_BITS · exp(−d · LOGIT_STEP)) for d = 0, 1, …
  until it rounds to 0 (the last entry)."""
  d = np.arange(int(math.log(2 ** (WEIGHT_BITS + 1)) / LOGIT_STEP) + 2)
  weights = np.round(2. ** WEIGHT_BITS * np.exp(-d * LOGIT_STEP))
  weights[-1] = 0
  return weights.astype(np.int64)


class BisectionCoder(tf.Module):
  """Codes integer symbols [N] in [low, high] under Gaussian mixtures [N, K]
  given as integer logits (units LOGIT_STEP), means (units
  2^−MEAN_BITS) and scale indices."""

  def __init__(self, low=mixture.LOW, high=mixture.HIGH, levels=4096,
               precision=16, name="bisection_coder"):
    super().__init__(name=name)
    self.low, self.high = low, high
    self.steps = int(round(math.log2(high - low + 1)))
    if 2 ** self.steps != high - low + 1:
      raise ValueError("high - low + 1 must be a power of two")
    rows, thresholds = binary_table(levels, precision)
    self.table = tf.Variable(rows, trainable=False, name="table")
    self.thresholds = tf.Variable(thresholds[None], trainable=False,
                                  name="thresholds")
    self.weight_table = tf.Variable(logit_weights(), trainable=False,
                                    name="weight_table")
    self.cdf = ig.CdfTable()

  def weights(self, logits):
    """Integer mixture weights [..., K] (int64) from integer logits: the
    largest is 2^WEIGHT_BITS, the others exp(−difference) times that."""
    if logits.shape[-1] > MAX_COMPONENTS:
      raise ValueError(f"at most {MAX_COMPONENTS} mixture components")
    gap = tf.reduce_max(logits, -1, keepdims=True) - logits
    last = self.weight_table.shape[0] - 1
    return tf.gather(self.weight_table, tf.minimum(gap, last))

  def _bisect(self, handle, logits, means, scales, symbols=None):
    """The bisection shared by encoder (symbols given) and decoder. The
    cost is the number of ops per step (the loop runs per latent position),
    so each step is kept to a few dozen. With symbols and no handle, the
    decisions are returned instead of coded: ([rows], [bits]) per step."""
    weights = self.weights(logits)
    thresholds = tf.identity(self.thresholds)  # read once, not per step
    means = tf.cast(means, tf.int64)
    inverse = self.cdf.inverse_scale(scales)
    total = tf.reduce_sum(weights, -1) * (1 << ig.CDF_BITS)
    shape = tf.shape(total)
    a = tf.fill(shape, self.low)
    cdf_a, cdf_b = tf.zeros_like(total), total
    half = 1 << (RATIO_BITS - 1)
    decisions = []
    for i in range(self.steps):
      m = a + 2 ** (self.steps - 1 - i)
      boundary = tf.cast(m, tf.int64) * (1 << ig.MEAN_BITS) - (
          1 << (ig.MEAN_BITS - 1))
      cdf_m = tf.reduce_sum(weights * self.cdf(boundary[:, None], means,
                                               inverse), -1)
      left, mass = cdf_m - cdf_a, cdf_b - cdf_a
      ratio = tf.where(mass > 0,
                       left * (1 << RATIO_BITS) // tf.maximum(mass, 1), half)
      row = tf.searchsorted(thresholds, ratio[None], side="right",
                            out_type=tf.int32)[0]
      if symbols is None:
        handle, bit = tfc.entropy_decode_index(handle, row, shape, tf.int32)
        right = bit > 0
      else:
        right = symbols >= m
        if handle is None:
          decisions.append((row, tf.cast(right, tf.int32)))
        else:
          handle = tfc.entropy_encode_index(handle, row,
                                            tf.cast(right, tf.int32))
      a = tf.where(right, m, a)
      cdf_a = tf.where(right, cdf_m, cdf_a)
      cdf_b = tf.where(right, cdf_b, cdf_m)
    if handle is None:
      return decisions
    return handle, a

  def _checked(self, symbols):
    """`symbols`, after an error if any is outside [low, high] (the caller
    clips them; the coder never saturates silently). The parameters are
    integers: no NaN reaches the coder."""
    inside = tf.reduce_all((symbols >= self.low) & (symbols <= self.high))
    with tf.control_dependencies([tf.debugging.Assert(inside, [
        f"symbols outside the coder's support [{self.low}, {self.high}]"])]):
      return tf.identity(symbols)

  def encode(self, handle, symbols, logits, means, scales):
    """symbols [N] int32 in [low, high] → handle."""
    return self._bisect(handle, logits, means, scales,
                        self._checked(symbols))[0]

  def encode_positions(self, handle, symbols, logits, means, scales):
    """All positions at once (symbols [P, C], parameters [P, C, K]), in the
    order in which `decode` reads them position by position: per position,
    its channels' decisions step by step."""
    channels = tf.shape(symbols)[1]
    flat = lambda t: tf.reshape(t, tf.concat([[-1], tf.shape(t)[2:]], 0))
    rows, bits = zip(*self._bisect(None, flat(logits), flat(means),
                                   flat(scales),
                                   self._checked(tf.reshape(symbols, [-1]))))
    order = lambda t: tf.reshape(tf.transpose(tf.reshape(
        tf.stack(t), [self.steps, -1, channels]), [1, 0, 2]), [-1])
    return tfc.entropy_encode_index(handle, order(rows), order(bits))

  def decode(self, handle, logits, means, scales):
    """→ (handle, symbols [N] int32)."""
    return self._bisect(handle, logits, means, scales)

  def float_parameters(self, logits, means, scales):
    """The (weights, means, scales) in float that the integers stand for."""
    weights = tf.cast(self.weights(logits), tf.float64)
    return (weights / tf.reduce_sum(weights, -1, keepdims=True),
            tf.cast(means, tf.float64) / (1 << ig.MEAN_BITS),
            tf.gather(ig.scales(), scales))

  def ideal_bits(self, symbols, logits, means, scales):
    """−log2 p(symbols) under the integer parameters, the rate the coder
    approaches."""
    p = mixture.likelihood(tf.cast(symbols, tf.float64),
                           *self.float_parameters(logits, means, scales),
                           self.low, self.high)
    return -tf.reduce_sum(tf.math.log(p)) / math.log(2.)
