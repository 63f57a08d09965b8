"""The mean-scale hyperprior: Ballé et al. 2018, "Variational image compression
with a scale hyperprior" (Fig. 4), with the Gaussian mean of Minnen, Ballé and
Toderici 2018 ("Joint autoregressive and hierarchical priors", Fig. 4 without the
context model): the `hyperprior` model."""

import tensorflow as tf
import tensorflow_compression as tfc

from tflic import bitstream
from tflic.entropy import FactorizedPrior
from tflic.entropy import bands, GaussianConditional
from tflic.entropy import integer_gaussian as ig
from tflic.entropy.entropy_parameters import EntropyParameters
from tflic.layers import analysis_stage, synthesis_stage
from tflic.models.base import CODING_DEVICE, CompressionModel


def transforms(n, m, hyper_channels, hyper_outputs, gsdn=False):
  """g_a, g_s (Ballé 2018 Fig. 4: 5×5 convolutions with GDN/IGDN, N filters,
  M latent channels; GSDN/IGSDN with `gsdn`) and h_a, h_s (Minnen 2018 Fig. 4:
  h_s widens by 3/2)."""
  conv = tf.keras.layers.Conv2D
  deconv = tf.keras.layers.Conv2DTranspose
  analysis = tf.keras.Sequential([
      analysis_stage(n, 5, 2, "analysis_0", gsdn=gsdn),
      analysis_stage(n, 5, 2, "analysis_1", gsdn=gsdn),
      analysis_stage(n, 5, 2, "analysis_2", gsdn=gsdn),
      analysis_stage(m, 5, 2, "analysis_3", gdn=False),
  ], name="analysis")
  synthesis = tf.keras.Sequential([
      synthesis_stage(n, 5, 2, "synthesis_0", gsdn=gsdn),
      synthesis_stage(n, 5, 2, "synthesis_1", gsdn=gsdn),
      synthesis_stage(n, 5, 2, "synthesis_2", gsdn=gsdn),
      synthesis_stage(3, 5, 2, "synthesis_3", igdn=False),
  ], name="synthesis")
  hyper_analysis = tf.keras.Sequential([
      conv(hyper_channels, 3, padding="same", activation="relu", name="h_a_0"),
      conv(hyper_channels, 5, 2, padding="same", activation="relu", name="h_a_1"),
      conv(hyper_channels, 5, 2, padding="same", name="h_a_2"),
  ], name="hyper_analysis")
  hyper_synthesis = tf.keras.Sequential([
      deconv(m, 5, 2, padding="same", activation="relu", name="h_s_0"),
      deconv(m * 3 // 2, 5, 2, padding="same", activation="relu", name="h_s_1"),
      conv(hyper_outputs, 3, padding="same", name="h_s_2"),
  ], name="hyper_synthesis")
  return analysis, synthesis, hyper_analysis, hyper_synthesis


def split_gaussian(params):
  """Parameters [..., 2M] → (no logits, means, log σ [..., M, 1])."""
  mean, log_scale = tf.split(params, 2, axis=-1)
  return None, mean[..., None], log_scale[..., None]


class Hyperprior(CompressionModel):
  """y = g_a(x), z = h_a(y); ẑ coded with a factorized prior; (μ, log σ) = h_s(ẑ)
  parametrize the Gaussian of ŷ; x̂ = g_s(ŷ). Streams: [ẑ, ŷ].

  Coding: h_s runs as an integer network (`EntropyParameters`), μ on a grid of
  2^−6 and σ as an index into the scale grid; ŷ = round(y − μ) + μ is coded
  as round(y − μ) (clipped to [−255, 256]) under N(0, σ) (`GaussianTable`
  without fractions)."""

  multiple = 64

  def __init__(self, num_filters=192, latent_channels=320, hyper_channels=192,
               lmbda=0.01, distortion="mse", **kwargs):
    super().__init__(lmbda=lmbda, distortion=distortion, **kwargs)
    self.num_filters = num_filters
    self.latent_channels = latent_channels
    self.hyper_channels = hyper_channels
    (self.analysis, self.synthesis, self.hyper_analysis,
     self.hyper_synthesis) = transforms(num_filters, latent_channels,
                                        hyper_channels, 2 * latent_channels)
    self.hyper_prior = FactorizedPrior(hyper_channels, name="hyper_prior")
    self.conditional = GaussianConditional(name="conditional")
    self.parameter_path = EntropyParameters(
        self.hyper_synthesis, split=split_gaussian, name="parameter_path")
    self.coder = None

  def call(self, x, training=False):
    y = self.analysis(x)
    z_hat, z_bits = self.hyper_prior(self.hyper_analysis(y), training=training)
    _, mean, log_scale = split_gaussian(self.parameter_path(z_hat))
    y_hat, y_bits = self.conditional(y, mean[..., 0], log_scale[..., 0],
                                     training=training)
    return self.synthesis(y_hat), z_bits + y_bits

  def freeze(self, calibration):
    self.hyper_prior.freeze()
    z_hats = [self.hyper_prior.coder.quantize(
        self.hyper_analysis(self.analysis(x))) for x in calibration]
    self.parameter_path.freeze([], z_hats, self.hyper_prior.offset)
    self.coder = ig.GaussianTable(fractions=False)

  def _parameters(self, z_hat):
    """(μ float, scale indices) of ŷ from the decoded ẑ, in integers."""
    mean, scale = self.parameter_path.distribution(self.parameter_path.hyper(
        self.hyper_prior.symbols(z_hat)))
    return tf.cast(mean, tf.float32) * 2. ** -ig.MEAN_BITS, scale

  def encode_latents(self, x):
    y = self.analyze(x)
    z = self.hyper_analysis(y)
    with tf.device(CODING_DEVICE):
      # The parameters come from ẑ exactly as the decoder gets it.
      z_streams, z_hat = self.hyper_prior.encode(z)
      mean, scale = self._parameters(z_hat)
      symbols = tf.cast(tf.clip_by_value(tf.round(y - mean), self.coder.low,
                                         self.coder.high), tf.int32)
      code = lambda handle, start, stop: self.coder.encode(
          handle, symbols[0, start:stop], tf.zeros_like(scale[0, start:stop]),
          scale[0, start:stop])
      y_string = tfc.entropy_encode_finalize(bands.encode(
          tfc.create_range_encoder([], self.coder.table),
          tf.shape(scale)[1], tf.shape(scale)[2], code))
      y_hat = tf.cast(symbols, tf.float32) + mean
    return z_streams + [y_string], dict(y_hat=y_hat, z_hat=z_hat)

  def decode_latents(self, streams, height, width):
    z_shape = tf.stack([height // self.multiple, width // self.multiple])
    with tf.device(CODING_DEVICE):
      z_hat = self.hyper_prior.decode(streams[:-1], z_shape)
      mean, scale = self._parameters(z_hat)
      code = lambda handle, start, stop: self.coder.decode(
          handle, tf.zeros_like(scale[0, start:stop]), scale[0, start:stop])
      symbols = bands.decode(
          tfc.create_range_decoder(streams[-1], self.coder.table),
          tf.shape(scale)[1], tf.shape(scale)[2], code)[1]
      symbols = bitstream.within(symbols, self.coder.low, self.coder.high)
      y_hat = tf.cast(tf.reshape(symbols, tf.shape(scale)), tf.float32) + mean
    return dict(y_hat=y_hat, z_hat=z_hat)

  def get_config(self):
    return dict(super().get_config(), num_filters=self.num_filters,
                latent_channels=self.latent_channels,
                hyper_channels=self.hyper_channels)
