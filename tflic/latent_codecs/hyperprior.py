"""The hyperprior (Ballé et al. 2018, "Variational image compression with a
scale hyperprior", Fig. 4): a latent codec that composes a codec of the
hyper-latent z = h_a(y) (a factorized prior, or SLIMD), the hyper synthesis
ψ = h_s(ẑ) and a codec of y conditioned on ψ (mean-scale Gaussian, context
models, ...). Streams: ẑ's, then y's.

For coding, h_s is converted to an integer network (`freeze`, calibrated on
ẑ of real images; its last layer is the y codec's parameter head when the y
codec takes ψ as its parameters) and ψ is computed in bands of latent rows
from the ẑ rows they need (`psi_rows`), so its memory does not grow with
the image.
"""

import math

import numpy as np
import tensorflow as tf

from tflic.entropy import entropy_parameters as ep
from tflic.latent_codecs.base import LatentCodec
from tflic.latent_codecs.factorized import FactorizedPrior
from tflic.layers import integer

Z_STRIDE = 4  # latent rows per ẑ row


def reach(layers):
  """How many input rows beyond its own an output row of the integer
  layers reads (an upper bound; for the bands of ψ)."""
  total, scale = 0., 1
  for layer in layers:
    kernel = int(layer.kernel.shape[0])
    if layer.kind == "deconv":
      total += math.ceil(kernel / layer.strides) / scale
      scale *= layer.strides
    else:
      before = (kernel - 1) // 2 if layer.padding is None else (
          layer.padding[0][0])
      total += max(before, kernel - 1 - before) / scale
      scale *= layer.block
  return math.ceil(total) + 1


def hyperprior(hyper_channels, h_a, h_s, y_codec, quantization="round",
               density_layers=2, likelihood_bound=0.):
  """The usual composition: ẑ (of `hyper_channels`) under a factorized
  prior (`quantization`: what h_s gets in training; `density_layers`,
  `likelihood_bound`: `FactorizedPrior`'s), y under `y_codec` given
  ψ = h_s(ẑ)."""
  return HyperpriorCodec(
      FactorizedPrior(hyper_channels, key="z_hat", name="hyper_prior",
                      quantization=quantization,
                      density_layers=density_layers,
                      likelihood_bound=likelihood_bound), h_a,
      h_s, y_codec, name="hyperprior")


class HyperpriorCodec(LatentCodec):
  """z_codec: the codec of z (key "z_hat"); h_a, h_s: Sequentials; y_codec:
  the codec of y given ψ (its `hyper_head()`: the kinds of ψ's channels if
  ψ is its parameters, else None)."""

  def __init__(self, z_codec, h_a, h_s, y_codec, **kwargs):
    super().__init__(key=y_codec.key, **kwargs)
    # In this order: the order of the trainable variables, which the
    # optimizer's state follows, is that of models before latent codecs.
    self.h_a = h_a
    self.h_s = h_s
    self.z_codec = z_codec
    self.y_codec = y_codec

  @property
  def num_streams(self):
    return self.z_codec.num_streams + self.y_codec.num_streams

  @property
  def side_streams(self):
    return self.z_codec.num_streams

  @property
  def serial(self):
    return self.y_codec.serial

  def call(self, latent, training=False, side=None):
    del side
    z_latents, z_bits = self.z_codec(self.h_a(latent), training=training)
    y_latents, y_bits = self.y_codec(
        latent, training=training, side=self.h_s(z_latents["z_hat"]))
    return dict(z_latents, **y_latents), z_bits + y_bits

  # -- conversion -------------------------------------------------------------
  def freeze(self, latents, side=None):
    """Freezes the z codec, converts h_s to integers (calibrated on ẑ of
    `latents`), then the y codec (given ψ)."""
    self.z_codec.freeze()
    prior = self.z_codec.prior_codec
    z_hats = [prior.quantize(self.h_a(y)) for y in latents]
    z_scale = integer.power_of_two_scale(ep.max_abs(z_hats)[None])
    self.z_multiplier = tf.Variable(int(round(1 / z_scale)), dtype=tf.int32,
                                    trainable=False, name="z_multiplier")
    self.z_offset = tf.Variable(
        np.round(np.asarray(prior.offset) / z_scale), dtype=tf.int32,
        trainable=False, name="z_offset")
    kinds = self.y_codec.hyper_head(self.h_s.layers[-1].filters)
    self.integer_hyper, scale, limit, psis = ep.convert_chain(
        self.h_s.layers, z_hats, z_scale, integer.activation_max(),
        None if kinds is None else ep.head(kinds))
    self.y_codec.freeze(latents, side=(psis, scale, limit))

  # -- coding -----------------------------------------------------------------
  def hyper(self, z_symbols):
    """ψ (integers) from ẑ's integer symbols [B, h, w, C_z] (int32)."""
    limit = integer.activation_max()
    # Clipped first, so that no product overflows int32 (a forged ẑ may
    # hold any symbol the factorized prior codes).
    bound = limit // self.z_multiplier + 2  # z_offset: at most half of it
    x = tf.clip_by_value(
        tf.clip_by_value(z_symbols, -bound, bound) * self.z_multiplier +
        self.z_offset, -limit, limit)
    for layer in self.integer_hyper:
      x = layer(x)
    return x

  def psi_rows(self, z_hat):
    """ψ by rows: a function (start, stop) → the integer ψ of latent rows
    [start, stop) [1, stop − start, w, ·], computed from the ẑ rows they
    read (with a halo that covers h_s's reach: exactly the rows of ψ of
    the whole ẑ)."""
    symbols = self.z_codec.prior_codec.symbols(z_hat)
    halo = reach(self.integer_hyper)
    height = tf.shape(symbols)[1]

    def rows(start, stop):
      first = tf.maximum(start // Z_STRIDE - halo, 0)
      last = tf.minimum(-(-stop // Z_STRIDE) + halo, height)
      psi = self.hyper(symbols[:, first:last])
      offset = first * Z_STRIDE
      return psi[:, start - offset:stop - offset]
    return rows

  def encode(self, latent, side=None):
    del side
    z_streams, z_latents = self.z_codec.encode(self.h_a(latent))
    y_streams, y_latents = self.y_codec.encode(
        latent, side=self.psi_rows(z_latents["z_hat"]))
    return z_streams + y_streams, dict(z_latents, **y_latents)

  def decode(self, streams, shape, side=None):
    del side
    count = self.z_codec.num_streams
    z_latents = self.z_codec.decode(streams[:count], tf.stack(
        [shape[0] // Z_STRIDE, shape[1] // Z_STRIDE]))
    y_latents = self.y_codec.decode(
        streams[count:], shape, side=self.psi_rows(z_latents["z_hat"]))
    return dict(z_latents, **y_latents)

  # -- what the model and the tools ask ---------------------------------------
  @property
  def factorized_codec(self):
    return self.z_codec

  def factorized_tensor(self, latent):
    return self.h_a(latent)

  def replace_factorized(self, codec):
    self.z_codec = codec
    return self

  def measures(self, latent):
    z_hat = self.z_codec(self.h_a(latent))[0]["z_hat"]
    return self.y_codec.measures(latent, side=self.h_s(z_hat))

  def legacy_children(self):
    return dict(self.y_codec.legacy_children(), hyper_analysis=self.h_a,
                hyper_synthesis=self.h_s, hyper_prior=self.z_codec)
