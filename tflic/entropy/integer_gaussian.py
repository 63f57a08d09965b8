"""Discretized Gaussians with integer parameters, coded exactly (Ballé,
Johnston and Minnen 2019, §3: the coder's tables are computed once and
shipped; only integers select a row).

An integer entropy-parameter network outputs, per element, the mean as an
integer in units of 2^−`MEAN_BITS` and the scale as an index into a fixed
grid of `NUM_SCALES` scales spaced evenly in log σ from `SCALE_MIN` to
`SCALE_MAX`. From these integers:

- `GaussianTable` codes a symbol with one range-coder row per (scale, mean
  fraction): the fraction is kept at 6 bits for σ < 1 and one bit less per
  octave above (the rate cost of the rounding shrinks as σ grows: < 0.01 %
  in every octave); symbols beyond ±4σ are escaped.
- `CdfTable` gives Φ((t − μ)/σ) · 2^`CDF_BITS` as an int64 (a table of Φ with
  linear interpolation, fixed-point z): the mixture coder's decisions and the
  confidence of the global reference model are computed from it.
"""

import functools
import math

import numpy as np
import tensorflow as tf
import tensorflow_compression as tfc

from tflic.entropy import escape
from tflic.entropy import mixture

SCALE_MIN = mixture.SCALE_MIN
SCALE_MAX = 256.
NUM_SCALES = 256
MEAN_BITS = 6
CDF_BITS = 26
PRECISION = 16  # of the range coder's rows
TAIL = 4.  # rows cover the mean ± TAIL·σ; beyond: escape coding


def scales():
  """The scale grid σ_s, s = 0 … NUM_SCALES − 1 (float64)."""
  return np.exp(np.linspace(math.log(SCALE_MIN), math.log(SCALE_MAX),
                            NUM_SCALES))


def scale_step():
  return (math.log(SCALE_MAX) - math.log(SCALE_MIN)) / (NUM_SCALES - 1)


def log_scale_index(log_scale):
  """The (continuous) grid index of log σ; `round` of it is the coded index."""
  return (log_scale - math.log(SCALE_MIN)) / scale_step()


def log_scale(index):
  """log σ at a (continuous) grid index."""
  return math.log(SCALE_MIN) + scale_step() * index


SIGMA_BITS = 10  # σ itself as an integer: in units of 2^−SIGMA_BITS


def log_sigma(sigma):
  """log σ of σ itself (a network's output), bounded below at SCALE_MIN as
  CompressAI's GaussianConditional bounds it (the gradient passes where it
  raises σ)."""
  return tf.math.log(tfc.lower_bound(sigma, SCALE_MIN))


@functools.lru_cache(None)
def sigma_thresholds():
  """The integer σ (units 2^−SIGMA_BITS) at and above which the coded scale
  index exceeds s, s = 0 … NUM_SCALES − 2: the grid's geometric midpoints,
  rounded up, so that `sigma_index` rounds the grid index as coding does
  for log σ. The grid is fixed, so this table is too; no midpoint lies
  within 10^−6 of an integer (a test checks it), so float64's last ulps on
  any machine give the same integers."""
  midpoints = np.exp(np.log(scales()[:-1]) + scale_step() / 2.)
  return np.ceil(midpoints * (1 << SIGMA_BITS)).astype(np.int32)


def sigma_index(sigma):
  """The scale index of integer σ (units 2^−SIGMA_BITS), exactly: how many
  thresholds it reaches (0 below the grid, NUM_SCALES − 1 above)."""
  thresholds = tf.constant(sigma_thresholds())
  flat = tf.reshape(tf.cast(sigma, tf.int32), [1, -1])
  index = tf.searchsorted(thresholds[None], flat, side="right",
                          out_type=tf.int32)
  return tf.reshape(index, tf.shape(sigma))


def _phi(z):
  return .5 * np.vectorize(math.erfc)(-np.asarray(z, np.float64) /
                                      math.sqrt(2.))


def quantized_cdf(pmf, precision=PRECISION):
  """A range-coder CDF row [0, …, 2^precision] for probabilities `pmf`
  (numpy, the last one the escape symbol): every symbol gets at least one
  count, the counts left over go to the most probable symbol: the first of
  those within 10^−9 of the largest, since exact ties (a mean halfway between
  two integers) come out a few ulps apart on other machines (numpy's
  vectorized exp differs with AVX-512)."""
  n, total = len(pmf), 1 << precision
  counts = 1 + np.floor(pmf / pmf.sum() * (total - n)).astype(np.int64)
  counts[np.flatnonzero(pmf >= pmf.max() * (1 - 1e-9))[0]] += (
      total - counts.sum())
  return np.concatenate([[0], np.cumsum(counts)])


def fraction_bits(sigma):
  """Mean-fraction bits of the rows of scale σ: 6 below 1, one less per
  octave above."""
  return int(np.clip(MEAN_BITS - max(0, math.floor(math.log2(sigma)) + 1),
                     0, MEAN_BITS))


@functools.lru_cache(maxsize=None)
def _table_rows(fractions):
  """The rows of a `GaussianTable` (computed once per process): per scale,
  its first row, the shift and rounding of the mean to its fraction bits,
  the fraction bits and their mask; each row's first symbol; the CDF rows;
  and the range of escaped symbols. That range is the last (widest) row's,
  [−1024, 1024], as format 3 has it: wider than [LOW, HIGH], so an escape
  costs ~2 bits more than it could."""
  per_scale, offsets, lookup = [], [], []
  for sigma in scales():
    bits = fraction_bits(sigma) if fractions else 0
    per_scale.append([len(offsets), MEAN_BITS - bits,
                      (1 << (MEAN_BITS - bits)) >> 1, bits, (1 << bits) - 1])
    for f in range(1 << bits):
      center = f / (1 << bits)
      low = math.floor(center - max(TAIL * sigma, 1.))
      high = math.ceil(center + max(TAIL * sigma, 1.))
      edges = _phi((np.arange(low, high + 2) - .5 - center) / sigma)
      pmf = np.diff(edges)
      pmf = np.append(pmf, max(1. - pmf.sum(), 0.))  # escape
      lookup.append(quantized_cdf(pmf))
      offsets.append(low)
  return (np.array(per_scale, np.int32), np.array(offsets, np.int32),
          lookup, (low, high))


class GaussianTable(tf.Module):
  """Range coding of integer symbols in [low, high] under discretized
  Gaussians given by integer means (units 2^−MEAN_BITS) and scale indices.
  `fractions=False`: every mean is 0 (the caller codes y − μ, as the
  mean-scale hyperprior's centered quantization does), one row per scale."""

  def __init__(self, fractions=True, low=mixture.LOW, high=mixture.HIGH,
               name="gaussian_table"):
    super().__init__(name=name)
    self.fractions = bool(fractions)
    self.low, self.high = low, high
    per_scale, offsets, lookup, escaped = _table_rows(self.fractions)
    self.per_scale = tf.Variable(per_scale, trainable=False, name="per_scale")
    self.row_offset = tf.Variable(offsets, trainable=False, name="row_offset")
    self.rows = escape.EscapeTable(lookup, *escaped, name="rows")

  @property
  def table(self):
    """The range coder lookup (`tfc.create_range_encoder`)."""
    return self.rows.lookup()[0]

  def _rows(self, mean, scale, symbols=None):
    """(row, symbols, base) of each element: symbol = bin + base."""
    first, shift, half, bits, mask = tf.unstack(
        tf.gather(self.per_scale, scale), axis=-1)
    mean = tf.bitwise.right_shift(mean + half, shift)  # units 2^−bits
    row = first + tf.bitwise.bitwise_and(mean, mask)
    base = tf.bitwise.right_shift(mean, bits) + tf.gather(self.row_offset, row)
    return row, symbols, base

  def encode(self, handle, symbols, mean, scale):
    """symbols (in [low, high]), mean, scale: int32 of one shape → handle."""
    return self.rows.encode(handle, *self._rows(mean, scale, symbols))

  def encode_positions(self, handle, symbols, mean, scale):
    """All positions at once ([P, C] each), in the order in which `decode`
    reads them position by position."""
    return self.rows.encode_groups(handle, *self._rows(mean, scale, symbols))

  def decode(self, handle, mean, scale):
    """→ (handle, symbols int32 of the shape of mean; a forged stream may
    give symbols outside [low, high], which the caller refuses)."""
    row, _, base = self._rows(mean, scale)
    return self.rows.decode(handle, row, base)


class CdfTable(tf.Module):
  """Φ((t − μ)/σ) · 2^CDF_BITS (int64) for a boundary t and a mean μ in
  units of 2^−MEAN_BITS and a scale index: a table of Φ at steps of
  2^−STEP_BITS over [−RANGE, RANGE] with linear interpolation; z is fixed
  point with `Z_BITS` fraction bits."""

  STEP_BITS = 6
  RANGE = 8
  INVERSE_BITS = 20  # 1/σ in units of 2^−20

  def __init__(self, name="cdf_table"):
    super().__init__(name=name)
    z = np.arange(-self.RANGE << self.STEP_BITS,
                  (self.RANGE << self.STEP_BITS) + 1) / (1 << self.STEP_BITS)
    phi = np.round(_phi(z) * (1 << CDF_BITS)).astype(np.int64)
    self.values = tf.Variable(phi[:-1], trainable=False, name="values")
    self.deltas = tf.Variable(np.diff(phi), trainable=False, name="deltas")
    self.inverse_scales = tf.Variable(
        np.round((1 << self.INVERSE_BITS) / scales()).astype(np.int64),
        trainable=False, name="inverse_scales")
    self._fraction = MEAN_BITS + self.INVERSE_BITS - self.STEP_BITS
    self._limit = self.RANGE << (MEAN_BITS + self.INVERSE_BITS)

  def inverse_scale(self, scale):
    """The fixed-point 1/σ of scale indices (int64), to pass to `__call__`."""
    return tf.gather(self.inverse_scales, scale)

  def __call__(self, boundary, mean, inverse_scale):
    """Φ at `boundary` (int64, units 2^−MEAN_BITS) for means (int64, same
    units) and `inverse_scale`s; broadcasting."""
    z = tf.clip_by_value((boundary - mean) * inverse_scale, -self._limit,
                         self._limit - 1) + self._limit
    index = tf.bitwise.right_shift(z, self._fraction)
    fraction = tf.bitwise.bitwise_and(z, (1 << self._fraction) - 1)
    return tf.gather(self.values, index) + tf.bitwise.right_shift(
        tf.gather(self.deltas, index) * fraction, self._fraction)
