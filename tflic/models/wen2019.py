"""Wen, Zhou, Nakagawa, Kazui and Tan 2019 (Fujitsu), "Variational
autoencoder based image compression with pyramidal features and context
entropy model" (CVPR 2019 workshop, CLIC): the `wen2019` model.

The joint model of Minnen et al. 2018 with the paper's three steps, each
behind a flag. Table 2's "Original" baseline has one masked 3×3 context
convolution (the text: the three stacked layers grow the receptive field
"from 3×3 to 7×7"; `context_kernel`, default 3; Minnen's `joint` keeps 5×5):
- `separate_entropy_model` (§2.3, Table 1): one context model and
  entropy-parameter network for μ, another for σ whose context reads |ŷ|;
  each context is three stacked masked 3×3 convolutions of M channels
  (7×7 receptive field; the first type A, the next two type B, LeakyReLU
  between them: the text gives neither), each network three 1×1
  convolutions with 384, 192 and 128 outputs (3M, 3M/2, M for M = 128) on
  [φ, ψ]. One Gaussian per element (eq. 1), coded by the serial coder of
  `latent_codecs.RasterContext`.
- `multiscale_encoder` (§2.1, Fig. 2; `layers.MultiScaleAnalysis`) with
  the weighted layer (§2.4, Fig. 5; `layers.WeightedLayer`,
  `weighted_layer`) before the convolution that merges the pyramid into y.
- `residual_decoder` (§2.2, Fig. 4): a two-layer residual block between
  adjacent IGDN up-sampling stages, and (`assistant`) the multi-scale
  assistant information: the hyperprior's output ψ = h_s(ẑ) through the
  pyramid atrous module (`layers.PyramidAtrous`), concatenated with ŷ at the
  decoder's input.

Paper sizes: N = 192, M = 128, hyperprior of 192 channels.
"""

import tensorflow as tf

from tflic import tiling
from tflic.latent_codecs import (RasterContext, context_branch, hyperprior,
                                 network, split_gaussian)
from tflic.layers import MaskedConv2D, ResidualBlock
from tflic.layers import synthesis_stage
from tflic.layers.multiscale import MultiScaleAnalysis
from tflic.layers.pyramid_atrous import PyramidAtrous
from tflic.layers.weighted import WeightedLayer
from tflic.models.base import CompressionModel
from tflic.models.hyperprior import transforms


def separate_branches(m):
  """The μ and σ branches of Table 1: (stacked masked convolutions, 1×1
  network, whether the context reads |ŷ|)."""
  def context(name):
    act = tf.nn.leaky_relu
    return [MaskedConv2D(m, 3, "A", activation=act, name=f"{name}_context_0"),
            MaskedConv2D(m, 3, "B", activation=act, name=f"{name}_context_1"),
            MaskedConv2D(m, 3, "B", name=f"{name}_context_2")]
  return [(context(name), network(
      m, m, name=f"{name}_parameters", prefix=f"{name}_ep",
      hidden=(3 * m, 3 * m // 2)), name == "scale")
          for name in ("mean", "scale")]


def residual_synthesis(n):
  """g_s of Fig. 4: IGDN up-sampling stages with a residual block between
  each two."""
  return tf.keras.Sequential([
      synthesis_stage(n, 5, 2, "synthesis_0"),
      ResidualBlock(n, name="residual_0"),
      synthesis_stage(n, 5, 2, "synthesis_1"),
      ResidualBlock(n, name="residual_1"),
      synthesis_stage(n, 5, 2, "synthesis_2"),
      ResidualBlock(n, name="residual_2"),
      synthesis_stage(3, 5, 2, "synthesis_3", igdn=False),
  ], name="synthesis")


class Wen2019(CompressionModel):
  """Streams: [ẑ (factorized prior), ŷ (context + hyperprior Gaussian)].

  With the multi-scale encoder, `analysis` (tiled) gives the pyramid's
  features and `merge` (after `weighting`) turns them into y on the whole
  latent (`finish_analysis`); with the assistant, the synthesis reads
  [ŷ, PA(h_s(ẑ))] (`synthesis_input`)."""

  multiple = 64
  halo = 4  # g_s (residual decoder) reaches 4 latent positions, g_a 2
  # g_a's probe is its full-resolution path, whose inception module holds
  # three branches of N channels where the probe sees one: 5/3 of the
  # usual overhead.
  overheads = (5., tiling.SYNTHESIS_OVERHEAD)

  def __init__(self, num_filters=192, latent_channels=128, hyper_channels=192,
               separate_entropy_model=True, multiscale_encoder=True,
               weighted_layer=True, residual_decoder=True, assistant=True,
               context_kernel=3, lmbda=0.01, distortion="mse", **kwargs):
    super().__init__(lmbda=lmbda, distortion=distortion, **kwargs)
    n, m = num_filters, latent_channels
    if weighted_layer and not multiscale_encoder:
      raise ValueError("weighted_layer is part of the multi-scale encoder")
    self.num_filters, self.latent_channels = n, m
    self.hyper_channels = hyper_channels
    analysis, synthesis, h_a, h_s = transforms(n, m, hyper_channels, 2 * m)
    self.analysis = (MultiScaleAnalysis(n, name="analysis")
                     if multiscale_encoder else analysis)
    self.synthesis = residual_synthesis(n) if residual_decoder else synthesis
    branches = (separate_branches(m) if separate_entropy_model else
                [context_branch(m, 2 * m, context_kernel)])
    self.latent_codec = hyperprior(hyper_channels, h_a, h_s,
                                   RasterContext(branches, split_gaussian))
    self.options = dict(separate_entropy_model=separate_entropy_model,
                        context_kernel=context_kernel,
                        multiscale_encoder=multiscale_encoder,
                        weighted_layer=weighted_layer,
                        residual_decoder=residual_decoder, assistant=assistant)
    self.weighting = WeightedLayer(name="weighted") if weighted_layer else None
    self.merge = (tf.keras.layers.Conv2D(m, 3, padding="same", name="merge")
                  if multiscale_encoder else None)
    self.assistant = PyramidAtrous(m, name="assistant") if assistant else None

  def finish_analysis(self, features):
    """y from the pyramid's features: the weighted layer and the merging
    convolution, on the whole latent (the weighted layer pools globally)."""
    if self.merge is None:
      return features
    if self.weighting is not None:
      features = self.weighting(features)
    return self.merge(features)

  def synthesis_input(self, latents):
    y_hat = super().synthesis_input(latents)
    if self.assistant is None:
      return y_hat
    psi = self.latent_codec.h_s(latents["z_hat"])
    return tf.concat([y_hat, self.assistant(psi)], -1)

  def latent_depth(self):
    return self.latent_channels * (2 if self.assistant is not None else 1)

  def transform_probes(self):
    analysis = (self.analysis.main if self.options["multiscale_encoder"]
                else self.analysis)
    return analysis, self.synthesis

  def legacy_children(self):
    children = dict(super().legacy_children(), weighting=self.weighting,
                    merge=self.merge, assistant=self.assistant)
    return {k: v for k, v in children.items() if v is not None}

  def get_config(self):
    return dict(super().get_config(), num_filters=self.num_filters,
                latent_channels=self.latent_channels,
                hyper_channels=self.hyper_channels, **self.options)
