"""Cheng, Sun, Takeuchi and Katto 2020, "Learned image compression with
discretized Gaussian mixture likelihoods and attention modules" (Fig. 2): the
`cheng2020` model.

Residual blocks (down-sampling by strided convolution in g_a, by sub-pixel
convolution in g_s), the simplified attention module (Fig. 5(b)), the
hyperprior and 5×5 context model of Minnen 2018 (`ContextModel`), and a
discretized Gaussian mixture of K components per element (eq. 9 and 10,
`entropy.mixture`: ŷ clipped to [−255, 256], the edges take all the tail mass).
`mixture_components=1` gives a single Gaussian: what CompressAI ships as
`cheng2020-anchor`/`cheng2020-attn`. `context="checkerboard"` (beyond the
paper): He et al. 2021's two-pass parallel context, the mixture coded
exactly. Images are padded by reflection.
"""

import tensorflow as tf

from tflic.latent_codecs import context_codec, hyperprior
from tflic.layers import (Attention, ResidualBlock, ResidualBlockUpsample,
                          ResidualBlockWithStride, SubPixelConv2D)
from tflic.entropy.mixture import mixture_split
from tflic.models.base import CompressionModel


def transforms(n):
  """g_a, g_s, h_a, h_s of Fig. 2, N filters throughout; y and z have N
  channels, h_s outputs the 2N hyper features."""
  conv = tf.keras.layers.Conv2D
  lrelu = tf.nn.leaky_relu
  analysis = tf.keras.Sequential([
      ResidualBlockWithStride(n, name="analysis_0"),
      ResidualBlock(n, name="analysis_1"),
      ResidualBlockWithStride(n, name="analysis_2"),
      Attention(name="analysis_attention_0"),
      ResidualBlock(n, name="analysis_3"),
      ResidualBlockWithStride(n, name="analysis_4"),
      ResidualBlock(n, name="analysis_5"),
      conv(n, 3, 2, padding="same", name="analysis_6"),
      Attention(name="analysis_attention_1"),
  ], name="analysis")
  synthesis = tf.keras.Sequential([
      Attention(name="synthesis_attention_0"),
      ResidualBlock(n, name="synthesis_0"),
      ResidualBlockUpsample(n, name="synthesis_1"),
      ResidualBlock(n, name="synthesis_2"),
      ResidualBlockUpsample(n, name="synthesis_3"),
      Attention(name="synthesis_attention_1"),
      ResidualBlock(n, name="synthesis_4"),
      ResidualBlockUpsample(n, name="synthesis_5"),
      ResidualBlock(n, name="synthesis_6"),
      SubPixelConv2D(3, 3, 2, name="synthesis_7"),
  ], name="synthesis")
  hyper_analysis = tf.keras.Sequential([
      conv(n, 3, padding="same", activation=lrelu, name="h_a_0"),
      conv(n, 3, padding="same", activation=lrelu, name="h_a_1"),
      conv(n, 3, 2, padding="same", activation=lrelu, name="h_a_2"),
      conv(n, 3, padding="same", activation=lrelu, name="h_a_3"),
      conv(n, 3, 2, padding="same", name="h_a_4"),
  ], name="hyper_analysis")
  hyper_synthesis = tf.keras.Sequential([
      conv(n, 3, padding="same", activation=lrelu, name="h_s_0"),
      SubPixelConv2D(n, 3, 2, activation=lrelu, name="h_s_1"),
      conv(n * 3 // 2, 3, padding="same", activation=lrelu, name="h_s_2"),
      SubPixelConv2D(n * 3 // 2, 3, 2, activation=lrelu, name="h_s_3"),
      conv(2 * n, 3, padding="same", name="h_s_4"),
  ], name="hyper_synthesis")
  return analysis, synthesis, hyper_analysis, hyper_synthesis


class Cheng2020(CompressionModel):
  """Streams: [ẑ (factorized prior), ŷ (context + hyperprior mixture)]."""

  multiple = 64
  pad_mode = "reflect"
  halo = 12  # g_a reaches 7 latent positions, g_s 11 (test_tiling)

  def __init__(self, num_filters=192, mixture_components=3, context="serial",
               lmbda=0.01, distortion="mse", **kwargs):
    super().__init__(lmbda=lmbda, distortion=distortion, **kwargs)
    n, k = num_filters, int(mixture_components)
    if k < 1:
      raise ValueError(f"mixture_components must be >= 1, not {k}")
    self.num_filters, self.mixture_components = n, k
    self.latent_channels = n
    self.analysis, self.synthesis, h_a, h_s = transforms(n)
    # K = 1 needs no weights: (μ, log σ) per channel, as in CompressAI. The
    # authors' entropy-parameter network: 1×1 convolutions 640 → 640 → 9N
    # for N = 192 (hidden widths 10N/3 for other N).
    outputs = (3 * k if k > 1 else 2) * n
    self.context = context
    self.latent_codec = hyperprior(n, h_a, h_s, context_codec(
        context, n, outputs, mixture_split(k, n), k,
        hidden=(n * 10 // 3,) * 2))

  def get_config(self):
    config = dict(super().get_config(), num_filters=self.num_filters,
                  mixture_components=self.mixture_components)
    if self.context != "serial":  # (serial models keep their identity)
      config["context"] = self.context
    return config
