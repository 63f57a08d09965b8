"""Channel-wise autoregression with latent residual prediction (Minnen and
Singh, ICIP 2020, "Channel-wise autoregressive entropy models for learned
image compression"; its architecture as tensorflow/compression's `ms2020`
example): a y codec given the hyper features ψ = [ψ_μ, ψ_σ] that codes y
in S slices of channels, one after another, every position of a slice at
once.

Slice i is a Gaussian N(μ_i, σ_i²) * U(−½, ½) with
  μ_i = f_μ,i([ψ_μ, ŷ_0 … ŷ_{k−1}]),  log σ_i = f_σ,i([ψ_σ, ŷ_0 … ŷ_{k−1}]),
k = min(i, `max_support`) (the first slices, as tensorflow/compression's
`ms2020`), and its reconstruction adds the latent residual prediction
  ŷ_i = round(y_i − μ_i) + μ_i + ½ tanh(f_lrp,i([ψ_μ, ŷ_0 … ŷ_{k−1},
        round(y_i − μ_i) + μ_i])),
which later slices condition on. Each f is three convolutions (5×5, 5×5,
3×3; ReLU between) of widths 0.7·M, 0.4·M, M/S: 224, 128, 32 at M = 320
(the example's fixed widths). f_σ outputs log σ, on the coder's grid of
256 scales from 0.11 to 256 (the example: an index into 64 such scales).

Coding (exact): the f are integer networks (`layers.integer`) calibrated
on latents of real images; ŷ is kept as an integer in units of 2^−6 (μ on
that grid, the coded symbol times 64, and ½ tanh from a table of the LRP
output on the same grid, computed once at conversion and stored in the
SavedModel), so every machine conditions the next slice on the same
integers. Supports are clipped to ±256, in training too. Each slice is
coded in bands of rows (`entropy/bands.py`) on one stream; its LRP is
computed after the slice, as it reads the slice's rows below a band.
"""

import numpy as np
import tensorflow as tf
import tensorflow_compression as tfc

from tflic import bitstream
from tflic.entropy import bands
from tflic.entropy import entropy_parameters as ep
from tflic.entropy import integer_gaussian as ig
from tflic.latent_codecs.base import LatentCodec
from tflic.latent_codecs.gaussian_conditional import conditional
from tflic.latent_codecs.hyperprior import reach

UNIT = 1 << ig.MEAN_BITS  # ŷ in units of 2^−6
SUPPORT_MAX = ep.Y_MAX  # |ŷ| a support holds
LRP_LIMIT = 6 * UNIT  # ½ tanh(x) rounds to ±½ on the 2^−6 grid beyond ±6


def slice_transform(width, depth, name, last_kernel=3):
  """A slice transform f: 5×5 (0.7·M), 5×5 (0.4·M), 3×3 (the slice's
  depth); with `last_kernel` 5, ELIC's channel context g_ch."""
  conv = tf.keras.layers.Conv2D
  return tf.keras.Sequential([
      conv(max(width * 7 // 10, 1), 5, padding="same", activation="relu",
           name=f"{name}_0"),
      conv(max(width * 2 // 5, 1), 5, padding="same", activation="relu",
           name=f"{name}_1"),
      conv(depth, last_kernel, padding="same", name=f"{name}_2"),
  ], name=name)


def lrp_table():
  """½ tanh(x / 64) · 64, rounded, for the integer x in ±LRP_LIMIT."""
  x = np.arange(-LRP_LIMIT, LRP_LIMIT + 1) / UNIT
  value = .5 * np.tanh(x) * UNIT
  # No entry is near a rounding tie, so every machine's tanh rounds alike.
  assert np.all(np.abs(value - np.floor(value) - .5) > 1e-6)
  return tf.constant(np.round(value), tf.int32)


def _run(layers, x):
  for layer in layers:
    x = layer(x)
  return x


class ChannelSlices(LatentCodec):
  """channels: M; slices: S (dividing M); max_support: how many of the
  first slices condition the others. ψ: [ψ_μ, ψ_σ], M channels each."""

  def __init__(self, channels, slices=10, max_support=5, key="y_hat",
               **kwargs):
    super().__init__(key=key, **kwargs)
    if channels % slices:
      raise ValueError(f"{slices} slices do not divide {channels} channels")
    self.channels, self.slices = channels, slices
    self.max_support = max_support
    depth = channels // slices
    self.mean_transforms = [slice_transform(channels, depth, f"mean_{i}")
                            for i in range(slices)]
    self.scale_transforms = [slice_transform(channels, depth, f"scale_{i}")
                             for i in range(slices)]
    self.lrp_transforms = [slice_transform(channels, depth, f"lrp_{i}")
                           for i in range(slices)]
    self.symbol_coder = None

  def hyper_head(self, channels):
    del channels  # ψ is features (h_s ends in a ReLU, as the example's)
    return None

  def _float(self, latent, psi, training):
    """The float slices → (ŷ slices, supports of each slice, bits)."""
    psi_mean, psi_scale = tf.split(psi, 2, -1)
    y_hats, supports, bits = [], [], 0.
    for i, y in enumerate(tf.split(latent, self.slices, -1)):
      support = [tf.clip_by_value(s, -SUPPORT_MAX, SUPPORT_MAX)
                 for s in y_hats[:self.max_support]]
      mean = self.mean_transforms[i](tf.concat([psi_mean] + support, -1))
      log_scale = self.scale_transforms[i](tf.concat([psi_scale] + support,
                                                     -1))
      y_hat, slice_bits = conditional(y, mean, log_scale, training)
      lrp = self.lrp_transforms[i](tf.concat([psi_mean] + support + [
          tf.clip_by_value(y_hat, -SUPPORT_MAX, SUPPORT_MAX)], -1))
      y_hats.append(y_hat + .5 * tf.tanh(lrp))
      supports.append((psi_mean, psi_scale, support, y_hat))
      bits += slice_bits
    return y_hats, supports, bits

  def call(self, latent, training=False, side=None):
    y_hats, _, bits = self._float(latent, side, training)
    return {self.key: tf.concat(y_hats, -1)}, bits

  # -- conversion -------------------------------------------------------------
  def freeze(self, latents, side=None):
    """Converts each slice's f_μ, f_σ, f_lrp to integer networks,
    calibrated on the float supports of `latents`."""
    psis, scale, limit = side
    runs = [self._float(y, psi, False)[1] for y, psi in zip(latents, psis)]
    half = self.channels
    psi_parts = ((half, scale[:half], limit), (half, scale[half:], limit))
    integer = []
    for i in range(self.slices):
      count = min(i, self.max_support) * (self.channels // self.slices)
      support = (count, 1. / UNIT, SUPPORT_MAX * UNIT)
      row = []
      for transform, psi, extra, kind in (
          (self.mean_transforms[i], 0, False, "mean"),
          (self.scale_transforms[i], 1, False, "log_scale"),
          (self.lrp_transforms[i], 0, True, "mean")):
        inputs = [tf.concat([run[i][psi]] + run[i][2] + (
            [tf.clip_by_value(run[i][3], -SUPPORT_MAX, SUPPORT_MAX)]
            if extra else []), -1) for run in runs]
        parts = [psi_parts[psi]] + ([support] if count else []) + (
            [(self.channels // self.slices,) + support[1:]] if extra else [])
        depth = transform.layers[-1].filters
        row.append(ep.convert_chain(
            transform.layers, inputs, *ep.concatenated(*parts),
            ep.head([kind] * depth))[0])
      integer.append(row)
    self.integer_slices = integer  # assigned whole: Keras tracks it
    self.halo = max(reach(layers) for row in integer for layers in row)
    self.lrp = lrp_table()
    self.symbol_coder = ig.GaussianTable(fractions=False)

  # -- coding -----------------------------------------------------------------
  def _slice(self, handle, i, psi, support, latent=None):
    """Codes (`latent` [h, w, M/S] float given) or decodes slice i, given
    ψ [h, w, 2M] and the support slices (ŷ in units of 2^−6) → (handle,
    ŷ_i [h, w, M/S] int32 in units of 2^−6, LRP added)."""
    coder = self.symbol_coder
    height, width = tf.shape(psi)[0], tf.shape(psi)[1]
    psi_mean, psi_scale = tf.split(psi, 2, -1)
    mean_net, scale_net, lrp_net = self.integer_slices[i]
    support = [tf.clip_by_value(s, -SUPPORT_MAX * UNIT, SUPPORT_MAX * UNIT)
               for s in support]

    def window(parts, layers, start, stop):
      """layers on rows [start, stop) of the concatenated parts (with the
      rows around them that they read)."""
      first = tf.maximum(start - self.halo, 0)
      last = tf.minimum(stop + self.halo, height)
      x = tf.concat([tf.cast(p[first:last], tf.int32) for p in parts], -1)
      return _run(layers, x[None])[0, start - first:stop - first]

    def code(handle, start, stop):
      mean = window([psi_mean] + support, mean_net, start, stop)
      scale = window([psi_scale] + support, scale_net, start, stop)
      if latent is None:
        handle, symbols = coder.decode(handle, tf.zeros_like(scale), scale)
        symbols = bitstream.within(symbols, coder.low, coder.high)
      else:
        symbols = tf.cast(tf.clip_by_value(tf.round(
            latent[start:stop] - tf.cast(mean, tf.float32) / UNIT),
                                           coder.low, coder.high), tf.int32)
        handle = coder.encode(handle, symbols, tf.zeros_like(scale), scale)
      return handle, symbols * UNIT + mean

    handle, y_hat = bands.collect(handle, height, width, code)
    y_hat = tf.reshape(y_hat, [height, width, -1])
    clipped = tf.clip_by_value(y_hat, -SUPPORT_MAX * UNIT, SUPPORT_MAX * UNIT)

    def predict(state, start, stop):
      x = window([psi_mean] + support + [clipped], lrp_net, start, stop)
      index = tf.clip_by_value(x, -LRP_LIMIT, LRP_LIMIT) + LRP_LIMIT
      return state, y_hat[start:stop] + tf.gather(self.lrp, index)

    return handle, tf.reshape(
        bands.collect(tf.constant(0), height, width, predict)[1],
        [height, width, -1])

  def _code(self, handle, side, shape, latent=None):
    """All slices → (handle, ŷ [1, h, w, M] float)."""
    # ψ of the whole latent, once (int16: hidden activations are 12 bits).
    psi = tf.cast(side(0, shape[0])[0], tf.int16)
    depth = self.channels // self.slices
    y_hats = []
    for i in range(self.slices):
      handle, y_hat = self._slice(
          handle, i, psi, y_hats[:self.max_support],
          None if latent is None else latent[..., i * depth:(i + 1) * depth])
      y_hats.append(y_hat)
    y_hat = tf.cast(tf.concat(y_hats, -1), tf.float32) / UNIT
    return handle, y_hat[None]

  def encode(self, latent, side=None):
    handle = tfc.create_range_encoder([], self.symbol_coder.table)
    handle, y_hat = self._code(handle, side, tf.shape(latent)[1:3],
                               latent[0])
    y_hat.set_shape(latent.shape)
    return [tfc.entropy_encode_finalize(handle)], {self.key: y_hat}

  def decode(self, streams, shape, side=None):
    handle = tfc.create_range_decoder(streams[0], self.symbol_coder.table)
    return {self.key: self._code(handle, side, shape)[1]}
