"""Minnen, Ballé and Toderici 2018, "Joint autoregressive and hierarchical
priors for learned image compression" (Fig. 4): the `joint` model.

The mean-scale hyperprior's transforms plus the context model
(`context_model.ContextModel`): a 5×5 masked convolution on ŷ and a 1×1
entropy-parameter network give (μ, σ) of one Gaussian per element.
"""

import tensorflow as tf

from tflic.models.context_model import ContextModel, scale
from tflic.models.hyperprior import transforms


class Joint(ContextModel):
  """Streams: [ẑ (factorized prior), ŷ (context + hyperprior Gaussian)]."""

  def __init__(self, num_filters=192, latent_channels=192, hyper_channels=192,
               lmbda=0.01, distortion="mse", **kwargs):
    m = latent_channels
    super().__init__(m, hyper_channels, 2 * m, lmbda=lmbda,
                     distortion=distortion, **kwargs)
    self.num_filters = num_filters
    (self.analysis, self.synthesis, self.hyper_analysis,
     self.hyper_synthesis) = transforms(num_filters, m, hyper_channels, 2 * m)

  def distribution(self, params):
    """(μ, log σ) per channel: a mixture of one component."""
    mean, log_scale = tf.split(params, 2, axis=-1)
    mean = mean[..., None]
    return tf.ones_like(mean), mean, scale(log_scale)[..., None]

  def get_config(self):
    return dict(super().get_config(), num_filters=self.num_filters,
                latent_channels=self.latent_channels,
                hyper_channels=self.hyper_channels)
