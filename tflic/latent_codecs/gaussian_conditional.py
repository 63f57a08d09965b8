"""The mean-scale Gaussian conditional (Minnen, Ballé and Toderici 2018,
eq. 2 and 3, without context): p(ŷ | ψ) = Π_i (N(μ_i, σ_i²) * U(−½, ½))(ŷ_i),
(μ, log σ) = ψ, the hyper synthesis' output (or (μ, σ), as Ballé 2018's
h_s gives σ and CompressAI's models do). The hyperprior's y codec."""

import tensorflow as tf
import tensorflow_compression as tfc

from tflic import bitstream
from tflic.entropy import bands
from tflic.entropy import entropy_parameters as ep
from tflic.entropy import integer_gaussian as ig
from tflic.entropy.noisy_normal import log_likelihood
from tflic.entropy.noisy_rate import noisy_rate
from tflic.latent_codecs.base import LatentCodec


def split_gaussian(params):
  """Parameters [..., 2M] → (no logits, means, log σ [..., M, 1])."""
  mean, log_scale = tf.split(params, 2, axis=-1)
  return None, mean[..., None], log_scale[..., None]


def _scale(index):
  return tf.math.exp(ig.log_scale(index))


QUANTIZATIONS = ("round", "noise")
SCALES = ("log", "sigma")


def conditional(latent, mean, log_scale, training, quantization="round",
                likelihood_bound=0.):
  """Training form of N(μ, σ²) * U(−½, ½) on the coder's scale grid → (ŷ,
  bits per batch item). In training the bits are those of ỹ = y + u
  (`noisy_rate`, with its `likelihood_bound`, under `noisy_normal`) and
  ŷ = round(y − μ) + μ, straight-through; with `quantization="noise"`,
  ŷ = that same ỹ (Ballé et al. 2018, §2; CompressAI's training form).
  Otherwise the bits of ŷ."""
  model = tfc.LocationScaleIndexedEntropyModel(
      tfc.NoisyNormal, ig.NUM_SCALES, _scale, coding_rank=3,
      compression=False)
  if not training:
    _, bits = model(latent, ig.log_scale_index(log_scale), loc=mean,
                    training=False)
    return model.quantize(latent, loc=mean), bits
  index = tfc.upper_bound(tfc.lower_bound(ig.log_scale_index(log_scale), 0.),
                          float(ig.NUM_SCALES - 1))  # as the model's own
  scale = _scale(index)
  noisy, bits = noisy_rate(latent - mean, lambda x: log_likelihood(x, scale),
                           likelihood_bound)
  if quantization == "noise":
    return noisy + mean, bits
  return model.quantize(latent, loc=mean), bits


class GaussianConditional(LatentCodec):
  """ŷ = round(y − μ) + μ in training (straight-through) as in coding, so
  the decoder sees what the model trained on (`quantization="noise"`: y + u
  in training); log σ on the coder's scale grid (`integer_gaussian.scales`).
  `scale="sigma"`: ψ gives σ itself, bounded below at the grid's smallest
  σ (`integer_gaussian.log_sigma`).

  Coding: h_s's last layer is this codec's integer head (`hyper_head`): μ
  on a grid of 2^−6 and σ as an index into the scale grid (σ itself:
  in units of 2^−10, turned into the index by integer comparisons,
  `integer_gaussian.sigma_index`); round(y − μ), clipped to the table's
  [low, high], is coded under N(0, σ) (one `GaussianTable` row per scale),
  in bands of rows (`entropy/bands.py`)."""

  def __init__(self, key="y_hat", scale="log", quantization="round",
               likelihood_bound=0., **kwargs):
    super().__init__(key=key, **kwargs)
    if scale not in SCALES:
      raise ValueError(f"scale must be one of {SCALES}, not {scale!r}")
    if quantization not in QUANTIZATIONS:
      raise ValueError(f"quantization must be one of {QUANTIZATIONS}, not "
                       f"{quantization!r}")
    self.scale = scale
    self.quantization = quantization
    self.likelihood_bound = likelihood_bound
    self.symbol_coder = None

  def call(self, latent, training=False, side=None):
    _, mean, log_scale = split_gaussian(side)
    if self.scale == "sigma":
      log_scale = ig.log_sigma(log_scale)
    y_hat, bits = conditional(latent, mean[..., 0], log_scale[..., 0],
                              training, self.quantization,
                              self.likelihood_bound)
    return {self.key: y_hat}, bits

  def hyper_head(self, channels):
    kinds = ep.kinds(split_gaussian, channels)
    if self.scale == "sigma":
      kinds[kinds == "log_scale"] = "sigma"
    return kinds

  def freeze(self, latents, side=None):
    self.channels = latents[0].shape[-1]
    self.symbol_coder = ig.GaussianTable(fractions=False)

  def _parameters(self, psi):
    """(μ float, scale indices) of integer ψ rows."""
    mean, scale = ep.distribution(split_gaussian, psi)
    if self.scale == "sigma":
      scale = ig.sigma_index(scale)
    return tf.cast(mean, tf.float32) * 2. ** -ig.MEAN_BITS, scale

  def encode(self, latent, side=None):
    coder = self.symbol_coder

    def band(handle, start, stop):
      mean, scale = self._parameters(side(start, stop))
      symbols = tf.cast(tf.clip_by_value(
          tf.round(latent[:, start:stop] - mean), coder.low, coder.high),
                        tf.int32)
      handle = coder.encode(handle, symbols[0], tf.zeros_like(scale[0]),
                            scale[0])
      return handle, (tf.cast(symbols, tf.float32) + mean)[0]
    shape = tf.shape(latent)
    handle, y_hat = bands.collect(
        tfc.create_range_encoder([], coder.table), shape[1], shape[2], band,
        tf.float32)
    y_hat = tf.reshape(y_hat, shape)
    y_hat.set_shape(latent.shape)
    return [tfc.entropy_encode_finalize(handle)], {self.key: y_hat}

  def decode(self, streams, shape, side=None):
    coder = self.symbol_coder

    def band(handle, start, stop):
      mean, scale = self._parameters(side(start, stop))
      handle, symbols = coder.decode(handle, tf.zeros_like(scale[0]),
                                     scale[0])
      symbols = bitstream.within(symbols, coder.low, coder.high)
      return handle, (tf.cast(symbols, tf.float32) + mean)[0]
    y_hat = bands.collect(tfc.create_range_decoder(streams[0], coder.table),
                          shape[0], shape[1], band, tf.float32)[1]
    return {self.key: tf.reshape(y_hat, [1, shape[0], shape[1],
                                         self.channels])}
