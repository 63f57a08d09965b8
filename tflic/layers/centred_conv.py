"""Strided convolutions padded as PyTorch pads them: (k − 1)/2 zeros on each
side, so that output i of a stride-2 convolution is centred on input 2i, and
the transposed convolution that is its adjoint (PyTorch's `padding=(k −
1)/2, output_padding=1`). TensorFlow's "same" pads an even-sized input by
one row before and two after (for k = 5), centring output i on 2i + 1.
CompressAI's models and tensorflow-compression's `SignalConv2D`
("same_zeros") use the centred grid, so a model padded so computes what
theirs compute with the same weights (bench/compressai_weights.py)."""

import tensorflow as tf


class CentredStridedConv(tf.keras.layers.Conv2D):
  """A k×k convolution of stride 2 whose output i is centred on input 2i
  (zero padding of (k − 1)/2 on each side), output size ⌈input / 2⌉."""

  def __init__(self, filters, kernel_size=3, **kwargs):
    super().__init__(filters, kernel_size, strides=2, padding="valid",
                     **kwargs)

  def call(self, x):
    p = (self.kernel_size[0] - 1) // 2
    return super().call(tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]]))

  def get_config(self):
    config = super().get_config()
    for key in ("strides", "padding"):
      config.pop(key)
    return config


class CentredStridedConvTranspose(tf.keras.layers.Conv2DTranspose):
  """The transposed k×k convolution of stride 2 on the same grid: a "valid"
  one (2n + k − 2 outputs) cropped by (k − 1)/2 before and (k − 3)/2
  after, output size 2·input."""

  def __init__(self, filters, kernel_size=5, **kwargs):
    super().__init__(filters, kernel_size, strides=2, padding="valid",
                     **kwargs)

  def call(self, x):
    k = self.kernel_size[0]
    shape = tf.shape(x)
    rows, cols = 2 * shape[1], 2 * shape[2]
    y = tf.nn.conv2d_transpose(
        x, self.kernel, tf.stack([shape[0], rows + k - 2, cols + k - 2,
                                  self.filters]), 2, "VALID")
    y = y[:, (k - 1) // 2:, (k - 1) // 2:][:, :rows, :cols]
    if self.use_bias:
      y = tf.nn.bias_add(y, self.bias)
    return self.activation(y) if self.activation is not None else y

  def compute_output_shape(self, input_shape):
    shape = tf.TensorShape(input_shape).as_list()
    return tf.TensorShape([shape[0]] + [None if n is None else 2 * n
                                        for n in shape[1:3]] + [self.filters])

  def get_config(self):
    config = super().get_config()
    for key in ("strides", "padding"):
      config.pop(key)
    return config
