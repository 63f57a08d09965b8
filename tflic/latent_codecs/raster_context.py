"""The raster-scan context model (Minnen, Ballé and Toderici 2018, Fig. 4;
Cheng et al. 2020, Fig. 2; Wen et al. 2019, §2.3) as a y codec given the
hyper features ψ: causal context + network branches on [φ, ψ]
(`entropy.entropy_parameters.EntropyParameters`) give each element's
Gaussian or mixture of K Gaussians.

ŷ = round(y) (clipped to [−255, 256]) is what the context sees in training
(straight-through) and in coding, so the parameters the model trained with
are the ones the coder uses. For coding the path is converted to integer
networks (`freeze`); the decoder decodes ŷ position by position in the
serial raster-scan loop (`entropy.autoregressive.raster_scan`), the encoder
computes the same integer parameters for bands of rows at once and codes
them in the same order: one range-coder row per integer (mean, scale) for
K = 1 (`GaussianTable`), the bisection coder for mixtures
(`BisectionCoder`). Integers only select the rows, so a file decodes the
same on every machine (docs/design.md).
"""

import tensorflow as tf
import tensorflow_compression as tfc

from tflic.entropy import autoregressive
from tflic.entropy import bands
from tflic.entropy import entropy_parameters as ep
from tflic.entropy import integer_gaussian as ig
from tflic.entropy import mixture
from tflic.entropy.bisection import BisectionCoder
from tflic.latent_codecs.base import LatentCodec
from tflic.latent_codecs.checkerboard import Checkerboard
from tflic.layers.masked_conv import MaskedConv2D


def network(m, outputs, name="entropy_parameters", prefix="ep", hidden=None):
  """The 1×1 entropy-parameter network of Minnen 2018 Fig. 4 (4M → 10M/3 →
  8M/3 → outputs, leaky ReLU), or with the given `hidden` widths."""
  conv = tf.keras.layers.Conv2D
  hidden = hidden or (m * 10 // 3, m * 8 // 3)
  return tf.keras.Sequential([
      conv(width, 1, activation=tf.nn.leaky_relu, name=f"{prefix}_{i}")
      for i, width in enumerate(hidden)] + [
          conv(outputs, 1, name=f"{prefix}_{len(hidden)}")], name=name)


def context_branch(m, outputs, kernel=5, hidden=None, mask="A"):
  """Minnen 2018's one branch: a masked convolution of 2M channels (type A,
  5×5; or the checkerboard's) on ŷ and the entropy-parameter `network` on
  [φ, ψ]."""
  return ([MaskedConv2D(2 * m, kernel, mask, name="context_model")],
          network(m, outputs, hidden=hidden), False)


CONTEXTS = ("serial", "checkerboard")


def context_codec(context, m, outputs, split, mixture_components=1,
                  hidden=None):
  """The y codec of a one-branch context model: `RasterContext` ("serial",
  Minnen 2018) or `Checkerboard` (He et al. 2021)."""
  if context not in CONTEXTS:
    raise ValueError(f"context must be one of {CONTEXTS}, not {context!r}")
  if context == "serial":
    return RasterContext([context_branch(m, outputs, hidden=hidden)], split,
                         mixture_components)
  return Checkerboard([context_branch(m, outputs, hidden=hidden,
                                      mask="checkerboard")], split,
                      mixture_components)


class RasterContext(LatentCodec):
  """branches: (context layers, 1×1 network, whether the context reads
  |ŷ|) per branch; split: parameters → (logits or None, means, log σ),
  each [..., C, K]; mixture_components: K."""

  serial = True

  def __init__(self, branches, split, mixture_components=1, key="y_hat",
               **kwargs):
    super().__init__(key=key, **kwargs)
    self.mixture_components = mixture_components
    self.parameters = ep.EntropyParameters(branches, split,
                                           name="parameter_path")
    self.symbol_coder = None

  def call(self, latent, training=False, side=None):
    y_hat = mixture.quantize(latent)
    distribution = mixture.distribution(self.parameters.split,
                                        self.parameters(side, y_hat))
    values = mixture.noisy(latent) if training else y_hat
    return {self.key: y_hat}, mixture.bits(values, *distribution)

  def hyper_head(self, channels):
    del channels  # ψ is features: h_s's last layer is a hidden layer
    return None

  def freeze(self, latents, side=None):
    psis, scale, limit = side
    self.parameters.freeze([mixture.quantize(y) for y in latents], psis,
                           scale, limit)
    self.symbol_coder = (ig.GaussianTable() if self.mixture_components == 1
                         else BisectionCoder())

  def encode(self, latent, side=None):
    """The integer parameters of a band of rows are computed at once (the
    same integers the decoder computes one by one) and coded in raster
    order, band after band."""
    symbols = mixture.symbols(latent)
    positions = lambda t: tf.reshape(t, tf.concat([[-1], tf.shape(t)[2:]], 0))

    def band(handle, start, stop):
      params = ep.distribution(self.parameters.split, self.parameters
                               .parallel_rows(symbols, side, start, stop)[0])
      return self.symbol_coder.encode_positions(
          handle, positions(symbols[0, start:stop]),
          *(positions(t) for t in params))
    shape = tf.shape(symbols)
    handle = bands.each(tfc.create_range_encoder([], self.symbol_coder.table),
                        shape[1], shape[2], band)
    return ([tfc.entropy_encode_finalize(handle)],
            {self.key: tf.cast(symbols, tf.float32)})

  def decode(self, streams, shape, side=None):
    """The serial decoder: ŷ position by position."""
    handle = tfc.create_range_decoder(streams[0], self.symbol_coder.table)
    scan = self.parameters.serial(side, shape[0], shape[1])
    symbols = autoregressive.raster_scan(scan, self.symbol_coder, handle,
                                         shape[0], shape[1])[1]
    return {self.key: tf.cast(symbols, tf.float32)[None]}

  def legacy_children(self):
    if len(self.parameters.networks) == 1:
      return dict(context_model=self.parameters.contexts[0][0],
                  entropy_parameters=self.parameters.networks[0])
    return dict(parameter_path=self.parameters)
