"""Gain units (Cui, Wang, Zhang, Xu, Liu and Huang, CVPR 2021, "Asymmetric
gained deep image compression with continuous rate adaptation", §3.2–3.3):
one model for every rate.

Level l of L, trained with its own λ_l, has a gain vector g_l and an
inverse gain vector g'_l over the latent channels: the coded latent is
y ⊙ g_l and the synthesis reads ŷ ⊙ g'_l. Between levels, exponential
interpolation (eq. 9): for q = l + f, g = g_l^(1−f) · g_{l+1}^f (and the same
for g'), a continuous quality knob.

Why gain units: they scale y before quantization and ŷ after it, in float
only, so the latent codec codes an ordinary latent with its unchanged
integer path (every model family, context models included, stays exact),
and a trained fixed-rate model becomes variable-rate by fine-tuning (the
gains start at √(λ_l / λ_ref), the step of high-rate theory, and 1 at the
reference λ). Unlike Cui et al.'s hyper gains, z = h_a(y ⊙ g): h_s learns
the parameters of the gained latent, which keeps h_s an exact integer
network (its input would otherwise be scaled per level in float).
"""

import math

import numpy as np
import tensorflow as tf

from tflic import bitstream

MAX_LEVELS = 16
FRACTION_BITS = 12  # q in the stream: round(q · 2^12), 16 bits
QUALITY_RANGE = (0., 100.)  # the user's quality, like a JPEG quality


class GainUnits(tf.keras.layers.Layer):
  """lmbdas: the levels' λ, increasing (rate and quality grow with q);
  reference: the λ whose gains start at 1 (default: the geometric middle)."""

  def __init__(self, lmbdas, reference=None, **kwargs):
    super().__init__(**kwargs)
    self.lmbdas = [float(l) for l in lmbdas]
    if not 2 <= len(self.lmbdas) <= MAX_LEVELS or self.lmbdas != sorted(
        set(self.lmbdas)) or min(self.lmbdas) <= 0:
      raise ValueError(f"variable rate needs 2 … {MAX_LEVELS} increasing "
                       f"positive λ, not {lmbdas}")
    self.reference = float(reference or math.exp(np.mean(np.log(self.lmbdas))))
    self.levels = len(self.lmbdas)

  def build(self, input_shape):
    channels = input_shape[-1]
    start = .5 * np.log(np.array(self.lmbdas) / self.reference)
    log_gains = np.repeat(start[:, None], channels, 1).astype(np.float32)
    self.log_gain = self.add_weight(
        "log_gain", [self.levels, channels],
        initializer=tf.constant_initializer(log_gains))
    self.log_inverse_gain = self.add_weight(
        "log_inverse_gain", [self.levels, channels],
        initializer=tf.constant_initializer(-log_gains))

  def resample(self, lmbdas, log_gain, log_inverse_gain):
    """Sets the tables from another model's levels `lmbdas` (its tables
    [L', C]): linear in log λ between its levels and, beyond them, along its
    end levels' slope (the start values' law, log g = ½ log λ/λ_ref, is also
    linear in log λ). How a trained model gains levels at either end."""
    source = np.log(np.asarray(lmbdas, np.float64))
    if len(source) < 2 or np.any(np.diff(source) <= 0):
      raise ValueError(f"levels to resample from must be 2 or more "
                       f"increasing λ, not {lmbdas}")
    target = np.log(self.lmbdas)
    index = np.clip(np.searchsorted(source, target) - 1, 0, len(source) - 2)
    fraction = ((target - source[index]) /
                (source[index + 1] - source[index]))[:, None]
    for variable, table in ((self.log_gain, log_gain),
                            (self.log_inverse_gain, log_inverse_gain)):
      table = np.asarray(table, np.float64)
      variable.assign((table[index] + fraction * (
          table[index + 1] - table[index])).astype(np.float32))

  def _interpolate(self, table, quality):
    """table [L, C] of logs, at the level q (float scalar in [0, L − 1])."""
    q = tf.clip_by_value(tf.cast(quality, tf.float32), 0., self.levels - 1.)
    level = tf.minimum(tf.cast(tf.floor(q), tf.int32), self.levels - 2)
    fraction = q - tf.cast(level, tf.float32)
    return tf.exp((1. - fraction) * table[level] + fraction * table[level + 1])

  def call(self, y, quality):
    """y ⊙ g(q)."""
    return y * self._interpolate(self.log_gain, quality)

  def inverse(self, y_hat, quality):
    """ŷ ⊙ g'(q)."""
    return y_hat * self._interpolate(self.log_inverse_gain, quality)

  def lmbda(self, level):
    """λ of an integer level."""
    return tf.gather(tf.constant(self.lmbdas), level)

  @property
  def default(self):
    """The middle quality, (L − 1) / 2."""
    return (self.levels - 1) / 2.

  def get_config(self):
    return dict(super().get_config(), lmbdas=self.lmbdas,
                reference=self.reference)


def level(quality, levels):
  """The user's quality (0 … 100) → q in levels (0 … L − 1), linearly: with
  λ on a geometric grid, each step of quality is a like step of rate."""
  low, high = QUALITY_RANGE
  q = (tf.cast(quality, tf.float32) - low) / (high - low) * (levels - 1)
  return tf.clip_by_value(q, 0., levels - 1.)


def quality_code(quality, levels):
  """q (float, levels) → its code in the stream: round(q · 2^12) (int32),
  within [0, (L − 1) · 2^12]."""
  scale = 1 << FRACTION_BITS
  q = tf.clip_by_value(tf.cast(quality, tf.float32), 0., levels - 1.)
  return tf.cast(tf.round(q * scale), tf.int32)


def quality_stream(code):
  """The quality's stream: its code in 2 bytes, big-endian."""
  return bitstream.be_bytes(code, 2)


def read_quality(stream, levels):
  """The code of a quality stream, after an error if it is not 2 bytes or
  beyond the last level."""
  digits = tf.io.decode_raw(stream, tf.uint8)
  with tf.control_dependencies([bitstream.require(
      tf.size(digits) == 2, "a quality stream of other than 2 bytes")]):
    digits = tf.cast(tf.pad(digits, [[0, 2]])[:2], tf.int32)
  code = digits[0] * 256 + digits[1]
  with tf.control_dependencies([bitstream.require(
      code <= (levels - 1) << FRACTION_BITS, "a quality beyond the last "
      "level")]):
    return tf.identity(code)
