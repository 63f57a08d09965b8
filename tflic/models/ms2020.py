"""Minnen and Singh 2020, "Channel-wise autoregressive entropy models for
learned image compression" (ICIP): the `ms2020` model, as
tensorflow/compression's `ms2020` example.

Ballé 2018's g_a and g_s (N = 192, M = 320); h_a of 3×3 (M), 5×5/2 (4/3·C)
and 5×5/2 (C) convolutions, C = 192; ŷ coded in S = 10 slices, each
conditioned on ψ and on up to 5 earlier slices, with latent residual
prediction (`latent_codecs.ChannelSlices`). The two hyper synthesis
transforms (for the means and for the scales) are here one h_s of twice
their widths whose output is [ψ_μ, ψ_σ], converted to one integer network:
a superset of the two (their weights are its block diagonal), larger (9.7 M
parameters against 5.8 M) and with hidden features that ψ_μ and ψ_σ share.
"""

import tensorflow as tf

from tflic.latent_codecs import ChannelSlices, hyperprior
from tflic.models.base import CompressionModel
from tflic.models.hyperprior import transforms


def hyper_transforms(m, c):
  """h_a, h_s (h_s: the mean and scale branches as one network of twice
  their widths; a ReLU at its end, as the example's)."""
  conv = tf.keras.layers.Conv2D
  deconv = tf.keras.layers.Conv2DTranspose
  wide = c * 4 // 3
  hyper_analysis = tf.keras.Sequential([
      conv(m, 3, padding="same", activation="relu", name="h_a_0"),
      conv(wide, 5, 2, padding="same", activation="relu", name="h_a_1"),
      conv(c, 5, 2, padding="same", use_bias=False, name="h_a_2"),
  ], name="hyper_analysis")
  hyper_synthesis = tf.keras.Sequential([
      deconv(2 * c, 5, 2, padding="same", activation="relu", name="h_s_0"),
      deconv(2 * wide, 5, 2, padding="same", activation="relu", name="h_s_1"),
      conv(2 * m, 3, padding="same", activation="relu", name="h_s_2"),
  ], name="hyper_synthesis")
  return hyper_analysis, hyper_synthesis


class Ms2020(CompressionModel):
  """Streams: [ẑ (factorized prior), ŷ (all slices, in order)]."""

  multiple = 64

  def __init__(self, num_filters=192, latent_channels=320, hyper_channels=192,
               num_slices=10, max_support_slices=5, lmbda=0.01,
               distortion="mse", **kwargs):
    super().__init__(lmbda=lmbda, distortion=distortion, **kwargs)
    m = latent_channels
    self.num_filters, self.latent_channels = num_filters, m
    self.hyper_channels = hyper_channels
    self.num_slices, self.max_support_slices = num_slices, max_support_slices
    self.analysis, self.synthesis = transforms(num_filters, m, 1, 1)[:2]
    h_a, h_s = hyper_transforms(m, hyper_channels)
    self.latent_codec = hyperprior(hyper_channels, h_a, h_s, ChannelSlices(
        m, num_slices, max_support_slices, name="channel_slices"))

  def get_config(self):
    return dict(super().get_config(), num_filters=self.num_filters,
                latent_channels=self.latent_channels,
                hyper_channels=self.hyper_channels,
                num_slices=self.num_slices,
                max_support_slices=self.max_support_slices)
