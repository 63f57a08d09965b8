"""Sub-pixel convolution (Shi et al. 2016, "Real-time single image and video
super-resolution using an efficient sub-pixel convolutional neural network",
Fig. 1): the up-sampling of Cheng et al. 2020 (Fig. 2)."""

import tensorflow as tf


class SubPixelConv2D(tf.keras.layers.Layer):
  """Up-samples by `scale`: a convolution to filters·scale² channels, then
  `depth_to_space` rearranges them into scale × scale blocks."""

  def __init__(self, filters, kernel_size=3, scale=2, activation=None,
               **kwargs):
    super().__init__(**kwargs)
    self.filters = filters
    self.kernel_size = kernel_size
    self.scale = scale
    self.activation = tf.keras.activations.get(activation)

  def build(self, input_shape):
    self.conv = tf.keras.layers.Conv2D(
        self.filters * self.scale ** 2, self.kernel_size, padding="same",
        name="conv", dtype=self.dtype_policy)
    self.conv.build(input_shape)
    super().build(input_shape)

  def call(self, x):
    return self.activation(tf.nn.depth_to_space(self.conv(x), self.scale))

  def get_config(self):
    return dict(super().get_config(), filters=self.filters,
                kernel_size=self.kernel_size, scale=self.scale,
                activation=tf.keras.activations.serialize(self.activation))
