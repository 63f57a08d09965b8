"""Ballé, Laparra, Simoncelli 2017, "End-to-end optimized image compression"
(Fig. 1 / Fig. 7 transforms, factorized prior): the `factorized` model."""

import tensorflow as tf

from tflic.entropy import FactorizedPrior
from tflic.layers import analysis_stage, synthesis_stage
from tflic.models.base import CODING_DEVICE, CompressionModel


class Balle2017(CompressionModel):
  """Three stages of convolution, down-sampling and GDN (9×9/4, 5×5/2, 5×5/2),
  their inverse with IGDN, and one non-parametric density per latent channel."""

  multiple = 16

  def __init__(self, num_filters=192, lmbda=0.01, distortion="mse", **kwargs):
    super().__init__(lmbda=lmbda, distortion=distortion, **kwargs)
    self.num_filters = num_filters
    self.analysis = tf.keras.Sequential([
        analysis_stage(num_filters, 9, 4, "analysis_0"),
        analysis_stage(num_filters, 5, 2, "analysis_1"),
        analysis_stage(num_filters, 5, 2, "analysis_2", gdn=False),
    ], name="analysis")
    self.synthesis = tf.keras.Sequential([
        synthesis_stage(num_filters, 5, 2, "synthesis_0"),
        synthesis_stage(num_filters, 5, 2, "synthesis_1"),
        synthesis_stage(3, 9, 4, "synthesis_2", igdn=False),
    ], name="synthesis")
    self.prior = FactorizedPrior(num_filters, name="prior")

  def call(self, x, training=False):
    y = self.analysis(x)
    y_hat, bits = self.prior(y, training=training)
    return self.synthesis(y_hat), bits

  def freeze(self, calibration):
    del calibration  # the factorized prior's tables are all it codes with
    self.prior.freeze()

  def encode_latents(self, x):
    y = self.analyze(x)
    with tf.device(CODING_DEVICE):
      strings = self.prior.compress(y)
      y_hat = self.prior.coder.quantize(y)
    return [strings[0]], dict(y_hat=y_hat)

  def decode_latents(self, streams, height, width):
    shape = tf.stack([height // self.multiple, width // self.multiple])
    with tf.device(CODING_DEVICE):
      y_hat = self.prior.decompress(tf.reshape(streams[0], [1]), shape)
    return dict(y_hat=y_hat)

  def get_config(self):
    return dict(super().get_config(), num_filters=self.num_filters)
