"""The global reference model of Qian et al. 2021, "Learning accurate entropy
model with global reference for image compression" (§3, Figs. 3–5).

For the current position p, the k×k patch of decoded latents around it,
masked to the positions before p in raster order (centre excluded), is
compared by cosine similarity with the equally masked patch of every earlier
position j; the best j* and its similarity S are the reference. Its
"relevant latents" (the k×k patch around j* with its centre, all decoded) are
transferred by a type-B masked convolution. The confidence U is the
likelihood of ŷ at j* under the context-only parameters, averaged over
channels.

The search is causal in training as in coding (only j < p): the authors'
public code lets training look at every other position, a mismatch with what
the decoder can do. In the coder the search is incremental (one
matrix-vector product against the kept normalized patches per position), and
`search_rows` can bound it to the latent rows above (linear cost in area).

The stages are combined either as Gaussian experts: precisions add, in the
log domain with log-sum-exp, and means are precision-weighted; the reference
expert's precision is scaled by S·U, so an unreliable reference (S·U → 0)
leaves the context-only estimate unchanged; or, as in the authors' code, as
the components of one Gaussian mixture whose reference component's weight is
scaled by S·U (its logit gains log S + log U).

For coding, `IntegerReference` computes all of it on integers, so that every
machine selects the same reference and parameters: the search compares
integer patches (ŷ clipped to ±`SEARCH_LIMIT`) by a fixed-point cos²·|a|²
with ties broken by position; S², U and the log of S·U are fixed point; the
experts combine with tables of softplus and sigmoid on log σ in units of
1/16 of a scale-grid step.
"""

import math

import numpy as np
import tensorflow as tf

from tflic.entropy import bisection
from tflic.entropy import integer_gaussian as ig

NONE = -2.  # the similarity of "no candidate"; every cosine is ≥ −1
EPSILON = 1e-9  # added to S·U before its log


def shifted(y, offsets):
  """y [B, H, W, C] → [B, H, W, n·C]: at each position, y at (dy, dx) from
  it for each offset in order (zeros outside), as the coder gathers them."""
  reach = max(max(abs(dy), abs(dx)) for dy, dx in offsets)
  padded = tf.pad(y, [[0, 0], [reach, reach], [reach, reach], [0, 0]])
  height, width = tf.shape(y)[1], tf.shape(y)[2]
  return tf.concat([
      padded[:, reach + dy:reach + dy + height, reach + dx:reach + dx + width]
      for dy, dx in offsets], -1)


def normalize(patch):
  """Unit vectors along the last axis (a zero patch stays zero)."""
  return tf.math.l2_normalize(patch, -1, epsilon=1e-12)


def search(patches, width, search_rows=0):
  """patches [B, N, D] (normalized, raster order, rows of `width`) →
  (j* [B, N] int32, S [B, N], valid [B, N] bool): for each p the most similar
  j < p (within the `search_rows` rows above, if > 0); S = 0 and valid =
  False where there is no candidate (p = 0)."""
  similarity = tf.matmul(patches, patches, transpose_b=True)  # [B, p, j]
  n = tf.shape(patches)[1]
  p, j = tf.range(n)[:, None], tf.range(n)[None, :]
  allowed = j < p
  if search_rows:
    allowed &= j >= (p // width - search_rows) * width
  similarity = tf.where(allowed, similarity, NONE)
  index = tf.argmax(similarity, -1, output_type=tf.int32)
  valid = tf.broadcast_to(tf.reduce_any(allowed, -1), tf.shape(index))
  s = tf.where(valid, tf.reduce_max(similarity, -1), 0.)
  return index, s, valid


def search_step(candidates, patch, start):
  """The coder's search at one position: candidates [n, D] are the patches of
  positions start … p − 1 → (j*, S, valid), as `search` computes them."""
  similarity = tf.concat([[NONE], tf.linalg.matvec(candidates, patch)], 0)
  best = tf.argmax(similarity, output_type=tf.int32)
  valid = best > 0
  return start + best - 1, tf.where(valid, similarity[best], 0.), valid


def combine(mean_a, log_precision_a, mean_b, log_precision_b):
  """The product of two Gaussian experts: precisions add (log-sum-exp of the
  log-precisions), the mean is precision-weighted."""
  log_precision = tf.reduce_logsumexp(
      tf.stack([log_precision_a, log_precision_b]), 0)
  mean = (tf.exp(log_precision_a - log_precision) * mean_a +
          tf.exp(log_precision_b - log_precision) * mean_b)
  return mean, log_precision


def reliability(s, u):
  """log(S⁺·U): added to the reference expert's log-precision."""
  return tf.math.log(tf.maximum(s, 0.) * u + EPSILON)


SEARCH_LIMIT = 127  # |ŷ| in the integer search's patches
_ORDER = 1 << 24  # positions, to break ties between equal keys
_LN_BITS = 12  # logarithms in units of 2^−12 nats
_S2_BITS, _U_BITS = 20, 15  # fixed-point S² and U


def check_patch_size(dimension):
  """Refuses patches of `dimension` latents whose integer search could
  overflow int64: the key dot²·1024/|b|² needs dot² · 1024 < 2^63 with
  |dot| ≤ dimension · SEARCH_LIMIT², and the key times `_ORDER` must fit."""
  worst = dimension * SEARCH_LIMIT ** 2
  if worst ** 2 * 1024 >= 1 << 63 or worst * 1024 * _ORDER >= 1 << 63:
    largest = math.isqrt(((1 << 63) - 1) // 1024) // SEARCH_LIMIT ** 2
    raise ValueError(
        f"the reference search compares patches of {dimension} latents; its "
        f"exact integer arithmetic allows at most {largest} (reference_size "
        "or latent_channels too large)")


class IntegerReference(tf.Module):
  """The coder's reference stage on integers (see the module docstring).
  `fine_bits`: log σ is in units of 2^−fine_bits of a scale-grid step."""

  def __init__(self, fine_bits, name="integer_reference"):
    super().__init__(name=name)
    unit = ig.scale_step() / (1 << fine_bits)  # nats of log σ
    self.fine_bits = fine_bits
    variable = lambda value, n: tf.Variable(value, trainable=False, name=n)
    # l_c = min(l_a, l_b) − softplus(−2u·|l_a − l_b|) / 2u (eq. of `combine`)
    d = np.arange(int(math.log(1 / unit) / (2 * unit)) + 2)
    self.softplus = variable(np.round(np.log1p(np.exp(-2 * unit * d)) /
                                      (2 * unit)).astype(np.int32), "softplus")
    # the weight of expert b: sigmoid(2u·(l_a − l_b)), in 2^−15
    self._reach = int(math.log(1 << 16) / (2 * unit)) + 1
    d = np.arange(-self._reach, self._reach + 1)
    self.sigmoid = variable(np.round((1 << 15) / (1 + np.exp(-2 * unit * d)))
                            .astype(np.int64), "sigmoid")
    self.logarithms = variable(np.round(
        (1 << _LN_BITS) * np.log(np.arange(1024, 2048))).astype(np.int64),
                               "logarithms")
    self.powers = variable(np.array([[1 << i for i in range(63)]], np.int64),
                           "powers")
    self._ln2 = round((1 << _LN_BITS) * math.log(2))
    # −ln(S·U)/2u in fine units, from ln(S·U) in 2^−12 nats: a multiplier
    self._to_fine = round((1 << 28) / (2 * unit * (1 << _LN_BITS)))
    self._none = round(-math.log(EPSILON) / (2 * unit))
    self.cdf = ig.CdfTable()

  @staticmethod
  def patch(values):
    """A search patch (int32 [D]) of decoded latents, and its |a|² (int64)."""
    patch = tf.clip_by_value(tf.reshape(values, [-1]), -SEARCH_LIMIT,
                             SEARCH_LIMIT)
    return patch, tf.cast(tf.reduce_sum(patch * patch), tf.int64)

  def search_step(self, candidates, norms, patch, norm, start):
    """The most similar earlier patch: candidates [n, D] (int32) of positions
    start … p − 1 and their |b|² [n] → (j*, S² in 2^−20, valid). The key
    sign(a·b)·(a·b)²/|b|² orders by cosine (|a| is fixed); ties go to the
    earliest position."""
    dot = tf.cast(tf.linalg.matvec(candidates, patch), tf.int64)
    key = tf.sign(dot) * (dot * dot * 1024 // tf.maximum(norms, 1))
    n = tf.shape(dot, out_type=tf.int64)[0]
    order = key * _ORDER + (_ORDER - 1 - tf.range(n, dtype=tf.int64))
    # Entry 0 stands for "no candidate" (p = 0).
    best = tf.argmax(tf.concat([[-(1 << 62)], order], 0), output_type=tf.int32)
    valid = best > 0
    dot, key = (tf.gather(tf.concat([[0], t], 0), best) for t in (dot, key))
    s2 = tf.where(valid & (dot > 0), key * 1024 // tf.maximum(norm, 1), 0)
    return start + best - 1, s2, valid

  def confidence(self, value, mean, scale):
    """U: the mean over channels of p(ŷ | μ, σ), in 2^−15 (int64)."""
    inverse = self.cdf.inverse_scale(scale)
    boundary = tf.cast(value, tf.int64) * (1 << ig.MEAN_BITS)
    mean = tf.cast(mean, tf.int64)
    half = 1 << (ig.MEAN_BITS - 1)
    mass = (self.cdf(boundary + half, mean, inverse) -
            self.cdf(boundary - half, mean, inverse))
    channels = tf.shape(mass, out_type=tf.int64)[-1]
    return tf.reduce_sum(mass, -1) // channels // (
        1 << (ig.CDF_BITS - _U_BITS))

  def _log(self, v):
    """ln v in 2^−12 nats for integers v ≥ 1 (int64): exponent and a table
    of the top 11 bits."""
    e = tf.searchsorted(self.powers, tf.reshape(v, [1, -1]), side="right",
                        out_type=tf.int64)[0] - 1
    e = tf.reshape(e, tf.shape(v))
    mantissa = tf.bitwise.left_shift(tf.bitwise.right_shift(
        v, tf.maximum(e - 10, 0)), tf.maximum(10 - e, 0))
    return tf.gather(self.logarithms, mantissa - 1024) + (e - 10) * self._ln2

  def _log_reliability(self, s2, u):
    """(ln(S⁺·U) in 2^−12 nats, whether S⁺·U > 0)."""
    ln = ((self._log(tf.maximum(s2, 1)) - _S2_BITS * self._ln2) // 2 +
          self._log(tf.maximum(u, 1)) - _U_BITS * self._ln2)
    return ln, (s2 > 0) & (u > 0)

  def reliability(self, s2, u):
    """−ln(S⁺·U + ε) / 2u: what the reference expert's log σ (fine units)
    gains, making its precision S⁺·U times smaller."""
    ln, known = self._log_reliability(s2, u)
    return tf.cast(tf.where(known, -ln * self._to_fine // (1 << 28),
                            self._none), tf.int32)

  def weight_logit(self, s2, u):
    """ln(S⁺·U + ε) in mixture-logit units (`bisection.LOGIT_STEP`): what
    the reference component's weight logit gains (`reliability`, mixture
    combination)."""
    ln, known = self._log_reliability(s2, u)
    unit = round((1 << _LN_BITS) * bisection.LOGIT_STEP)  # in 2^−12 nats
    logit = (ln + unit // 2) // unit
    none = round(math.log(EPSILON) / bisection.LOGIT_STEP)
    return tf.cast(tf.where(known, logit, none), tf.int32)

  def combine(self, mean_a, fine_a, mean_b, fine_b):
    """The product of two Gaussian experts (means in 2^−MEAN_BITS, log σ in
    fine units, int32): `combine` on integers."""
    d = fine_a - fine_b
    fine = tf.minimum(fine_a, fine_b) - tf.gather(
        self.softplus, tf.minimum(tf.abs(d), self.softplus.shape[0] - 1))
    weight = tf.gather(self.sigmoid,
                       tf.clip_by_value(d, -self._reach, self._reach) +
                       self._reach)
    step = tf.cast(mean_b - mean_a, tf.int64) * weight // (1 << 15)
    return mean_a + tf.cast(step, tf.int32), fine

  def scale_index(self, fine):
    """The coder's scale index of a fine log σ."""
    half = 1 << (self.fine_bits - 1)
    return tf.clip_by_value(tf.bitwise.right_shift(fine + half, self.fine_bits),
                            0, ig.NUM_SCALES - 1)
