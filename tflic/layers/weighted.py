"""The weighted layer of Wen et al. 2019 (§2.4, Fig. 5): global average
pooling, two convolutions and a sigmoid give one weight per channel, which
scales the features before the layer that reduces their channel count
(a squeeze-and-excitation block, Hu et al. 2018).

The text does not give the hidden width; we take channels / `reduction`."""

import tensorflow as tf


class WeightedLayer(tf.keras.layers.Layer):
  """x · sigmoid(conv(ReLU(conv(mean over H, W of x)))), per channel."""

  def __init__(self, reduction=4, **kwargs):
    super().__init__(**kwargs)
    self.reduction = reduction

  def build(self, input_shape):
    channels = input_shape[-1]
    self.squeeze = tf.keras.layers.Conv2D(
        max(channels // self.reduction, 1), 1, activation="relu",
        name="squeeze", dtype=self.dtype_policy)
    self.excite = tf.keras.layers.Conv2D(channels, 1, activation="sigmoid",
                                         name="excite",
                                         dtype=self.dtype_policy)
    super().build(input_shape)

  def call(self, x):
    pooled = tf.reduce_mean(x, [1, 2], keepdims=True)
    return x * self.excite(self.squeeze(pooled))

  def get_config(self):
    return dict(super().get_config(), reduction=self.reduction)
