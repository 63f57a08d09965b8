"""The checkerboard context model (He, Zheng, Sun, Wang and Qin, CVPR 2021,
"Checkerboard context model for efficient learned image compression", §3):
a y codec given the hyper features ψ that decodes in two passes, each
fully parallel.

The anchors, the positions whose row + column is even, are coded from ψ
alone; the non-anchors from ψ and a context over the decoded anchors (a
5×5 convolution that sees the odd offsets, the anchors around a
non-anchor, `MaskedConv2D(..., "checkerboard")`). Training computes both in
one pass as the paper does (eq. 4–5): the context of the anchor-masked ŷ,
zeroed at the anchors. The distributions are a Gaussian, or a mixture of K
Gaussians coded exactly by the bisection coder: no other library we know
codes a mixture with a parallel context exactly.

Coding (format 3): pass 1 codes every anchor, pass 2 every non-anchor, each
in bands of rows (`entropy/bands.py`, one coding call per band), so that
its parameters, computed with the integer networks of
`entropy_parameters.EntropyParameters` from the ψ rows of the band (and,
for the non-anchors, the anchors within the context's reach), do not grow
with the image. The pointwise network runs at the pass's positions only,
and the anchors' pass computes no context: φ is 0 there.
"""

import tensorflow as tf
import tensorflow_compression as tfc

from tflic import bitstream
from tflic.entropy import bands
from tflic.entropy import entropy_parameters as ep
from tflic.entropy import integer_gaussian as ig
from tflic.entropy import mixture
from tflic.entropy.bisection import BisectionCoder
from tflic.latent_codecs.base import LatentCodec


def anchors(height, width, dtype=tf.float32):
  """[h, w, 1]: 1 at the anchors (row + column even), else 0."""
  parity = (tf.range(height)[:, None] + tf.range(width)[None, :]) % 2
  return tf.cast(parity == 0, dtype)[..., None]


class Checkerboard(LatentCodec):
  """branches: (context layers, 1×1 network, whether the context reads
  |ŷ|), the context a checkerboard convolution; split: parameters →
  (logits or None, means, log σ), each [..., C, K]; mixture_components: K."""

  def __init__(self, branches, split, mixture_components=1, key="y_hat",
               **kwargs):
    super().__init__(key=key, **kwargs)
    self.mixture_components = mixture_components
    self.parameters = ep.EntropyParameters(branches, split,
                                           name="parameter_path")
    self.reach = max(layer.kernel_size[0] // 2
                     for context in self.parameters.contexts
                     for layer in context)
    self.symbol_coder = None

  def call(self, latent, training=False, side=None):
    y_hat = mixture.quantize(latent)
    shape = tf.shape(latent)
    mask = anchors(shape[1], shape[2])
    distribution = mixture.distribution(
        self.parameters.split, self.parameters(side, y_hat * mask, 1. - mask))
    values = mixture.noisy(latent) if training else y_hat
    return {self.key: y_hat}, mixture.bits(values, *distribution)

  def hyper_head(self, channels):
    del channels  # ψ is features: h_s's last layer is a hidden layer
    return None

  def freeze(self, latents, side=None):
    psis, scale, limit = side
    masked = [mixture.quantize(y) * anchors(y.shape[1], y.shape[2])
              for y in latents]
    self.parameters.freeze(masked, psis, scale, limit)
    self.channels = latents[0].shape[-1]
    self.symbol_coder = (ig.GaussianTable() if self.mixture_components == 1
                         else BisectionCoder())

  # -- coding -----------------------------------------------------------------
  def _pass(self, handle, y_hat, psi_rows, anchor, symbols=None):
    """Codes (symbols given) or decodes the anchors (`anchor`) or the
    non-anchors of every band → (handle, ŷ [h, w, C] int32 with them)."""
    height, width = tf.shape(y_hat)[0], tf.shape(y_hat)[1]
    coder, split = self.symbol_coder, self.parameters.split

    def band(state, start, stop):
      handle, y_hat = state
      selected = tf.equal(anchors(height, width, tf.int32)[start:stop, :, 0],
                          1 if anchor else 0)
      where = tf.where(selected)
      if anchor:  # φ = 0 at the anchors: ψ alone
        params = self.parameters.parallel(None, psi_rows(start, stop), where)
      else:
        first = tf.maximum(start - self.reach, 0)
        last = tf.minimum(stop + self.reach, height)
        context = y_hat[first:last] * anchors(height, width, tf.int32)[
            first:last]
        params = self.parameters.parallel(
            context[None], psi_rows(first, last),
            where + tf.cast([[start - first, 0]], tf.int64))
      params = ep.distribution(split, params)
      flat = [tf.reshape(t, tf.concat([[-1], tf.shape(t)[2:]], 0))
              for t in params]
      positions = where + tf.cast([[start, 0]], tf.int64)
      if symbols is None:
        handle, values = coder.decode(handle, *flat)
        values = bitstream.within(values, coder.low, coder.high)
        values = tf.reshape(values, [-1, self.channels])
        y_hat = tf.tensor_scatter_nd_update(y_hat, positions, values)
      else:
        values = tf.reshape(tf.gather_nd(symbols, positions), [-1])
        handle = coder.encode(handle, values, *flat)
      return handle, y_hat
    return bands.each((handle, y_hat), height, width, band)

  def code(self, handle, shape, side, symbols=None):
    """Both passes on a range coder's handle: codes `symbols` ([h, w, C]
    int32) or decodes a latent of [h, w] → (handle, ŷ [h, w, C] int32)."""
    y_hat = (tf.zeros(tf.concat([shape, [self.channels]], 0), tf.int32)
             if symbols is None else symbols)
    for anchor in (True, False):
      handle, y_hat = self._pass(handle, y_hat, side, anchor, symbols)
    return handle, y_hat

  def encode(self, latent, side=None):
    symbols = mixture.symbols(latent)[0]
    handle = self.code(tfc.create_range_encoder([], self.symbol_coder.table),
                       tf.shape(symbols)[:2], side, symbols)[0]
    return ([tfc.entropy_encode_finalize(handle)],
            {self.key: tf.cast(symbols, tf.float32)[None]})

  def decode(self, streams, shape, side=None):
    handle = tfc.create_range_decoder(streams[0], self.symbol_coder.table)
    y_hat = self.code(handle, shape, side)[1]
    return {self.key: tf.cast(y_hat, tf.float32)[None]}

  def legacy_children(self):
    return {}
