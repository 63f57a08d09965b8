"""Ballé, Laparra, Simoncelli 2017, "End-to-end optimized image compression"
(Fig. 1 / Fig. 7 transforms, factorized prior): the `factorized` model."""

import tensorflow as tf

from tflic.latent_codecs import FactorizedPrior
from tflic.layers import analysis_stage, synthesis_stage
from tflic.models.base import CompressionModel


class Factorized(CompressionModel):
  """Three stages of convolution, down-sampling and GDN (9×9/4, 5×5/2, 5×5/2),
  their inverse with IGDN, and one non-parametric density per latent channel.

  num_layers=4: the baseline of Minnen et al. 2018 (ICIP, "Image-dependent
  local entropy models", §2): four 5×5 stride-2 stages, N filters and
  `latent_channels` code channels (the paper: up to 192 and 320).

  padding: of the analysis convolutions, "zeros" (the papers') or
  "reflect" (a flat image gives flat latents to the border, which SLIMD's
  tiles then code in a few bits; `layers.reflect_conv`)."""

  multiple = 16
  identity = "Balle2017"

  def __init__(self, num_filters=192, num_layers=3, latent_channels=None,
               padding="zeros", lmbda=0.01, distortion="mse", **kwargs):
    super().__init__(lmbda=lmbda, distortion=distortion, **kwargs)
    if num_layers not in (3, 4):
      raise ValueError(f"num_layers must be 3 or 4, not {num_layers}")
    self.num_filters = n = num_filters
    self.num_layers = num_layers
    self.padding = padding
    self.latent_channels = m = latent_channels or num_filters
    if num_layers == 3:
      shapes = [(n, 9, 4), (n, 5, 2), (m, 5, 2)]
    else:
      shapes = [(n, 5, 2)] * 3 + [(m, 5, 2)]
    last = len(shapes) - 1
    self.analysis = tf.keras.Sequential([
        analysis_stage(c, k, s, f"analysis_{i}", gdn=i < last,
                       padding=padding)
        for i, (c, k, s) in enumerate(shapes)], name="analysis")
    outputs = [c for c, _, _ in shapes[:-1]][::-1] + [3]
    self.synthesis = tf.keras.Sequential([
        synthesis_stage(c, k, s, f"synthesis_{i}", igdn=i < last)
        for i, (c, (_, k, s)) in enumerate(zip(outputs, shapes[::-1]))],
                                         name="synthesis")
    self.latent_codec = FactorizedPrior(m, name="prior")

  def legacy_children(self):
    return dict(prior=self.latent_codec, analysis=self.analysis,
                synthesis=self.synthesis)

  def get_config(self):
    config = dict(super().get_config(), num_filters=self.num_filters,
                  num_layers=self.num_layers,
                  latent_channels=self.latent_channels)
    if self.padding != "zeros":  # (zero-padded models keep their identity)
      config["padding"] = self.padding
    return config
