"""Minnen, Ballé and Toderici 2018, "Joint autoregressive and hierarchical
priors for learned image compression" (Fig. 4): the `joint` model.

The mean-scale hyperprior's transforms plus the context model
(`context_model.ContextModel`): a 5×5 masked convolution on ŷ and a 1×1
entropy-parameter network give (μ, σ) of one Gaussian per element.
"""

from tflic.models.context_model import ContextModel
from tflic.models.hyperprior import split_gaussian, transforms


class Joint(ContextModel):
  """Streams: [ẑ (factorized prior), ŷ (context + hyperprior Gaussian)]."""

  def __init__(self, num_filters=192, latent_channels=192, hyper_channels=192,
               lmbda=0.01, distortion="mse", **kwargs):
    m = latent_channels
    super().__init__(transforms(num_filters, m, hyper_channels, 2 * m), m,
                     hyper_channels, 2 * m, lmbda=lmbda, distortion=distortion,
                     **kwargs)
    self.num_filters = num_filters

  def split_parameters(self, params):
    """(μ, log σ) per channel: a mixture of one component."""
    return split_gaussian(params)

  def get_config(self):
    return dict(super().get_config(), num_filters=self.num_filters,
                latent_channels=self.latent_channels,
                hyper_channels=self.hyper_channels)
