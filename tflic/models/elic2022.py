"""He, Yang, Peng, Ma, Qin and Wang 2022, "ELIC: efficient learned image
compression with unevenly grouped space-channel contextual adaptive coding"
(CVPR): the `elic2022` model, as CompressAI's `Elic2022Official` (layer for
layer at M = 320).

Transforms: 5×5 stride-2 convolutions with three residual bottleneck
blocks after each of the first three, and Cheng et al.'s simplified
attention (g_a after its second stage and at its end; g_s mirrored); N =
192, M = 320. Hyperprior as CompressAI's (h_s: N, 3N/2, 2N features, ReLU).
The space-channel context (SCCTX, `latent_codecs.ChannelGroups`):
y in the uneven groups 16, 16, 32, 64, M − 128, each coded with the
checkerboard context (`latent_codecs.Checkerboard`) given ψ and the channel
context g_ch^(k) of the earlier groups; the parameter aggregation is three
1×1 convolutions whose widths ramp linearly from their input to the 2·|group|
parameters, hidden widths at least 2N (as CompressAI's). For M other than
320 the groups keep the paper's proportions (1/20, 1/20, 1/10, 1/5, the
rest), and g_ch's widths 0.7·M and 0.4·M (224 and 128 at M = 320, fixed in
CompressAI's). ŷ = round(y), coded under N(μ, σ²) (CompressAI: round(y −
μ) + μ), as all our checkerboard and raster contexts: their integer coder
codes μ's fraction. `mixture_components=K` (beyond the paper) codes each
element with a mixture of K Gaussians (the bisection coder, exact).
"""

import numpy as np
import tensorflow as tf

from tflic.entropy.mixture import mixture_split
from tflic.latent_codecs import ChannelGroups, Checkerboard, hyperprior
from tflic.latent_codecs.channel_slices import slice_transform
from tflic.layers import Attention, MaskedConv2D, ResidualBottleneck
from tflic.models.base import CompressionModel
from tflic.models.hyperprior import hyper_transforms


def transforms(n, m):
  """g_a, g_s, h_a, h_s (h_s ends in 2N features)."""
  conv = tf.keras.layers.Conv2D
  deconv = tf.keras.layers.Conv2DTranspose

  def blocks(prefix):
    return [ResidualBottleneck(n, name=f"{prefix}_{i}") for i in range(3)]
  analysis = tf.keras.Sequential(
      [conv(n, 5, 2, padding="same", name="analysis_0")] +
      blocks("analysis_0_block") +
      [conv(n, 5, 2, padding="same", name="analysis_1")] +
      blocks("analysis_1_block") +
      [Attention(name="analysis_attention_0"),
       conv(n, 5, 2, padding="same", name="analysis_2")] +
      blocks("analysis_2_block") +
      [conv(m, 5, 2, padding="same", name="analysis_3"),
       Attention(name="analysis_attention_1")], name="analysis")
  synthesis = tf.keras.Sequential(
      [Attention(name="synthesis_attention_0"),
       deconv(n, 5, 2, padding="same", name="synthesis_0")] +
      blocks("synthesis_0_block") +
      [deconv(n, 5, 2, padding="same", name="synthesis_1"),
       Attention(name="synthesis_attention_1")] +
      blocks("synthesis_1_block") +
      [deconv(n, 5, 2, padding="same", name="synthesis_2")] +
      blocks("synthesis_2_block") +
      [deconv(3, 5, 2, padding="same", name="synthesis_3")],
      name="synthesis")
  # Minnen 2018's h_a and h_s with M := N (CompressAI's).
  return (analysis, synthesis) + hyper_transforms(n, n, 2 * n)


def uneven_groups(m):
  """The paper's groups 16, 16, 32, 64, M − 128 (M = 320), in proportion."""
  groups = [max(m * 1 // 20, 1), max(m * 1 // 20, 1), max(m // 10, 1),
            max(m // 5, 1)]
  if sum(groups) >= m:
    raise ValueError(f"latent_channels {m} too few for five groups")
  return groups + [m - sum(groups)]


def parameter_aggregation(inputs, outputs, hidden_min, name):
  """Three 1×1 convolutions, widths linear from `inputs` to `outputs`,
  hidden ones at least `hidden_min`, ReLU between."""
  widths = np.floor(np.linspace(inputs, outputs, 4)).astype(int)
  hidden = np.maximum(widths[1:-1], hidden_min)
  conv = tf.keras.layers.Conv2D
  return tf.keras.Sequential(
      [conv(int(w), 1, activation="relu", name=f"{name}_{i}")
       for i, w in enumerate(hidden)] +
      [conv(outputs, 1, name=f"{name}_2")], name=name)


class Elic2022(CompressionModel):
  """Streams: [ẑ (factorized prior), ŷ (the groups in order)]."""

  multiple = 64
  halo = 9  # g_a and g_s reach 9 latent positions (test_tiling)

  def __init__(self, num_filters=192, latent_channels=320, mixture_components=1,
               lmbda=0.01, distortion="mse", **kwargs):
    super().__init__(lmbda=lmbda, distortion=distortion, **kwargs)
    n, m, k = num_filters, latent_channels, int(mixture_components)
    if k < 1:
      raise ValueError(f"mixture_components must be >= 1, not {k}")
    self.num_filters, self.latent_channels = n, m
    self.mixture_components = k
    self.analysis, self.synthesis, h_a, h_s = transforms(n, m)
    groups = uneven_groups(m)
    codecs = []
    for i, g in enumerate(groups):
      outputs = (3 * k if k > 1 else 2) * g
      branch = ([MaskedConv2D(2 * g, 5, "checkerboard",
                              name=f"spatial_context_{i}")],
                parameter_aggregation(2 * g + 2 * g * (i > 0) + 2 * n,
                                      outputs, 2 * n, f"aggregation_{i}"),
                False)
      codecs.append(Checkerboard([branch], mixture_split(k, g), k,
                                 name=f"group_{i}"))
    contexts = [slice_transform(m, 2 * g, f"channel_context_{i + 1}",
                                last_kernel=5)
                for i, g in enumerate(groups[1:])]
    self.latent_codec = hyperprior(n, h_a, h_s, ChannelGroups(
        groups, contexts, codecs, name="channel_groups"))

  def get_config(self):
    return dict(super().get_config(), num_filters=self.num_filters,
                latent_channels=self.latent_channels,
                mixture_components=self.mixture_components)
