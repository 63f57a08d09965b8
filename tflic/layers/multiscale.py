"""The multi-scale (pyramidal) encoder of Wen et al. 2019 (§2.1, Fig. 2):
the image at four scales, each through its own path to the latent
resolution, the features concatenated.

The original goes through four stride-2 stages, the first an inception
module (`Inception`), the others 5×5 convolutions with GDN. The image
resized bilinearly to 1/2, 1/4 and 1/8 goes through one convolution each,
of stride 8, 4 and 2, so that all four are aligned on the latent grid. The
text is silent on the resizing filter and on these kernels; we resize with
antialiasing (so that 1/8 sees every pixel) and take kernels of 2·stride + 1
(5×5 at stride 2, covering a stride's window and half of each neighbour's).
A convolution after the weighted layer merges the concatenation into y
(`models.wen2019`): it runs on the whole latent, not on tiles, because the
weighted layer pools globally."""

import tensorflow as tf

from tflic.layers.gdn_stage import analysis_stage
from tflic.layers.inception import Inception

SCALES = (2, 4, 8)
STRIDE = 16


class MultiScaleAnalysis(tf.keras.layers.Layer):
  """x [B, H, W, 3] (H, W multiples of 16) → [B, H/16, W/16, 4·filters]:
  the full-resolution path and the three resized paths, concatenated."""

  def __init__(self, filters, **kwargs):
    super().__init__(**kwargs)
    self.filters = filters
    self.main = tf.keras.Sequential([
        Inception(filters, name="inception"),
        analysis_stage(filters, 5, 2, "analysis_1"),
        analysis_stage(filters, 5, 2, "analysis_2"),
        analysis_stage(filters, 5, 2, "analysis_3"),
    ], name="main")
    self.scale_paths = [
        analysis_stage(filters, 2 * (STRIDE // s) + 1, STRIDE // s,
                       f"scale_{s}") for s in SCALES]

  def call(self, x):
    size = tf.shape(x)[1:3]
    features = [self.main(x)]
    for s, path in zip(SCALES, self.scale_paths):
      features.append(path(tf.image.resize(x, size // s, "bilinear",
                                           antialias=True)))
    return tf.concat(features, -1)

  def get_config(self):
    return dict(super().get_config(), filters=self.filters)
