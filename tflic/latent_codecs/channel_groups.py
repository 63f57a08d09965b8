"""Channel groups coded one after another (He, Yang, Peng, Ma, Qin and Wang,
CVPR 2022, "ELIC: efficient learned image compression with unevenly grouped
space-channel contextual adaptive coding": its space-channel context
model, SCCTX): a y codec given the hyper features ψ that splits y's
channels into groups y^(0) … y^(K−1) and codes group k with a y codec
(ELIC's: the checkerboard context) given [ψ, g_ch^(k)(ŷ^(<k))], the
channel context of every earlier group (none for group 0), as CompressAI's
`ChannelGroupsLatentCodec`.

Coding (exact): each g_ch^(k) is converted to an integer network
(`layers.integer`) calibrated on ŷ of real images; ψ is computed once for
the latent (int16: its integers are 12-bit activations) and each group's
side in bands of rows, from the rows of the earlier groups it reads. All
groups are coded on one range-coder stream, group after group.
"""

import tensorflow as tf
import tensorflow_compression as tfc

from tflic.entropy import entropy_parameters as ep
from tflic.entropy import mixture
from tflic.latent_codecs.base import LatentCodec
from tflic.latent_codecs.hyperprior import reach


class ChannelGroups(LatentCodec):
  """groups: the channels of each group; channel_contexts: g_ch^(k) for k ≥
  1 (Sequentials of convolutions on the concatenated earlier groups);
  codecs: a y codec per group, all of one kind, with `code(handle, shape,
  side, symbols)` (`Checkerboard`), whose ŷ is round(y)."""

  def __init__(self, groups, channel_contexts, codecs, key="y_hat", **kwargs):
    super().__init__(key=key, **kwargs)
    if not len(groups) == len(channel_contexts) + 1 == len(codecs):
      raise ValueError("one codec per group and one channel context per "
                       "group but the first")
    self.groups = list(groups)
    self.channel_contexts = channel_contexts
    self.codecs = codecs

  def hyper_head(self, channels):
    del channels  # ψ is features, shared by the groups' parameter networks
    return None

  def call(self, latent, training=False, side=None):
    y_hats, bits = [], 0.
    for k, (y, codec) in enumerate(zip(tf.split(latent, self.groups, -1),
                                       self.codecs)):
      side_k = side if k == 0 else tf.concat(
          [side, self.channel_contexts[k - 1](tf.concat(y_hats, -1))], -1)
      latents, group_bits = codec(y, training=training, side=side_k)
      y_hats.append(latents[codec.key])
      bits += group_bits
    return {self.key: tf.concat(y_hats, -1)}, bits

  # -- conversion -------------------------------------------------------------
  def freeze(self, latents, side=None):
    """Converts each g_ch^(k) (calibrated on the ŷ of `latents`), then
    freezes group k's codec given [ψ, g_ch^(k)]."""
    psis, scale, limit = side
    psi_part = (psis[0].shape[-1], scale, limit)
    parts = list(zip(*[tf.split(y, self.groups, -1) for y in latents]))
    integer = []
    for k, codec in enumerate(self.codecs):
      if k == 0:
        codec.freeze(list(parts[0]), side=(psis, *ep.concatenated(psi_part)))
        continue
      earlier = [tf.concat([mixture.quantize(p) for p in image[:k]], -1)
                 for image in zip(*parts)]
      layers, context_scale, context_max, contexts = ep.convert_chain(
          self.channel_contexts[k - 1].layers, earlier, 1., ep.Y_MAX)
      integer.append(layers)
      codec.freeze(list(parts[k]), side=(
          [tf.concat(pair, -1) for pair in zip(psis, contexts)],
          *ep.concatenated(psi_part, (contexts[0].shape[-1], context_scale,
                                      context_max))))
    self.integer_contexts = integer  # assigned whole: Keras tracks it
    self.halo = max([reach(layers) for layers in integer], default=0)
    self.symbol_coder = self.codecs[0].symbol_coder
    for codec in self.codecs:  # one coder (and its tables) for the stream
      codec.symbol_coder = self.symbol_coder

  # -- coding -----------------------------------------------------------------
  def _code(self, handle, side, shape, symbols=None):
    """Every group on `handle` → (handle, ŷ [1, h, w, M] float)."""
    height = shape[0]
    psi = tf.cast(side(0, height), tf.int16)
    decoded, start_channel = [], 0
    for k, codec in enumerate(self.codecs):
      earlier = tf.concat(decoded, -1) if k else None

      def rows(start, stop, k=k, earlier=earlier):
        """[ψ, g_ch^(k)] of rows [start, stop) (int32)."""
        parts = [tf.cast(psi[:, start:stop], tf.int32)]
        if k:
          first = tf.maximum(start - self.halo, 0)
          last = tf.minimum(stop + self.halo, height)
          x = earlier[None, first:last]
          for layer in self.integer_contexts[k - 1]:
            x = layer(x)
          parts.append(x[:, start - first:stop - first])
        return tf.concat(parts, -1)
      group = None if symbols is None else symbols[
          ..., start_channel:start_channel + self.groups[k]]
      handle, y_hat = codec.code(handle, shape, rows, group)
      decoded.append(y_hat)
      start_channel += self.groups[k]
    return handle, tf.cast(tf.concat(decoded, -1), tf.float32)[None]

  def encode(self, latent, side=None):
    handle = tfc.create_range_encoder([], self.symbol_coder.table)
    handle, y_hat = self._code(handle, side, tf.shape(latent)[1:3],
                               mixture.symbols(latent)[0])
    y_hat.set_shape(latent.shape)
    return [tfc.entropy_encode_finalize(handle)], {self.key: y_hat}

  def decode(self, streams, shape, side=None):
    handle = tfc.create_range_decoder(streams[0], self.symbol_coder.table)
    return {self.key: self._code(handle, side, shape)[1]}
