"""Minnen, Ballé and Toderici 2018, "Joint autoregressive and hierarchical
priors for learned image compression" (Fig. 4): the `joint` model.

The mean-scale hyperprior's transforms; ŷ under a Gaussian per element
whose (μ, σ) a 5×5 masked convolution on ŷ and a 1×1 entropy-parameter
network on [context, h_s(ẑ)] give (`latent_codecs.RasterContext`), or
(`context="checkerboard"`, beyond the paper) the checkerboard context of He
et al. 2021, decoded in two parallel passes (`latent_codecs.Checkerboard`).
"""

from tflic.latent_codecs import context_codec, hyperprior, split_gaussian
from tflic.models.base import CompressionModel
from tflic.models.hyperprior import transforms


class Joint(CompressionModel):
  """Streams: [ẑ (factorized prior), ŷ (context + hyperprior Gaussian)]."""

  multiple = 64

  def __init__(self, num_filters=192, latent_channels=192, hyper_channels=192,
               context="serial", lmbda=0.01, distortion="mse", **kwargs):
    super().__init__(lmbda=lmbda, distortion=distortion, **kwargs)
    m = latent_channels
    self.num_filters = num_filters
    self.latent_channels = m
    self.hyper_channels = hyper_channels
    self.analysis, self.synthesis, h_a, h_s = transforms(
        num_filters, m, hyper_channels, 2 * m)
    self.context = context
    self.latent_codec = hyperprior(hyper_channels, h_a, h_s, context_codec(
        context, m, 2 * m, split_gaussian))

  def get_config(self):
    config = dict(super().get_config(), num_filters=self.num_filters,
                  latent_channels=self.latent_channels,
                  hyper_channels=self.hyper_channels)
    if self.context != "serial":  # (serial models keep their identity)
      config["context"] = self.context
    return config
