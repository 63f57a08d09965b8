"""The residual blocks of Cheng et al. 2020 (Fig. 2): a plain residual block,
one that down-samples (analysis) and one that up-samples (synthesis) with
sub-pixel convolution. GDN/IGDN are tensorflow-compression's."""

import tensorflow as tf
import tensorflow_compression as tfc

from tflic.layers.centred_conv import CentredStridedConv
from tflic.layers.gdn import GDN
from tflic.layers.subpixel import SubPixelConv2D


def _conv(filters, kernel, activation=None, name=None):
  return tf.keras.layers.Conv2D(filters, kernel, padding="same",
                                activation=activation, name=name)


class Subsample(tf.keras.layers.Layer):
  """x[:, ::2, ::2]: with a 1×1 convolution after it, the same values as a
  1×1 convolution of stride 2 ("same" padding, any size). The strided 1×1
  convolution's gradient crashes TensorFlow 2.14's oneDNN kernels (heap
  corruption for inputs of 64×64 and more), so the skip is computed this way."""

  def call(self, x):
    return x[:, ::2, ::2]


class _Block(tf.keras.layers.Layer):
  """A residual block: main branch + skip branch (lists of layers; an empty
  skip is the identity). Subclasses make both, knowing the input channels, in
  `_layers`."""

  def __init__(self, filters, **kwargs):
    super().__init__(**kwargs)
    self.filters = filters

  def _layers(self, input_channels):
    raise NotImplementedError

  def build(self, input_shape):
    self.main, self.skip = self._layers(input_shape[-1])
    for layer in self.main + self.skip:  # the block's policy but GDN's
      if not isinstance(layer, tfc.GDN):  # (mixed precision: precision.py)
        layer._set_dtype_policy(self.dtype_policy)  # pylint: disable=protected-access
    super().build(input_shape)

  def call(self, x):
    h, skip = x, x
    for layer in self.main:
      h = layer(h)
    for layer in self.skip:
      skip = layer(skip)
    return h + tf.cast(skip, h.dtype)  # float32 after GDN

  def get_config(self):
    return dict(super().get_config(), filters=self.filters)


class ResidualBlock(_Block):
  """conv 3×3, LeakyReLU, conv 3×3, LeakyReLU, + x (a 1×1 conv on the skip
  when the channels change)."""

  def _layers(self, input_channels):
    main = [_conv(self.filters, 3, activation=tf.nn.leaky_relu, name="conv_0"),
            _conv(self.filters, 3, activation=tf.nn.leaky_relu, name="conv_1")]
    skip = ([] if input_channels == self.filters
            else [_conv(self.filters, 1, name="skip")])
    return main, skip


class ResidualBlockWithStride(_Block):
  """conv 3×3 / 2, LeakyReLU, conv 3×3, GDN; skip: conv 1×1 / 2 (as
  `Subsample`, then conv 1×1). Both branches are centred on the even pixels
  (`CentredStridedConv`)."""

  def _layers(self, input_channels):
    main = [CentredStridedConv(self.filters, 3, activation=tf.nn.leaky_relu,
                               name="conv_0"),
            _conv(self.filters, 3, name="conv_1"),
            GDN(name="gdn")]
    skip = [Subsample(name="subsample"), _conv(self.filters, 1, name="skip")]
    return main, skip


class ResidualBlockUpsample(_Block):
  """sub-pixel conv 3×3 × 2, LeakyReLU, conv 3×3, inverse GDN; skip:
  sub-pixel conv 3×3 × 2."""

  def _layers(self, input_channels):
    main = [SubPixelConv2D(self.filters, 3, 2, tf.nn.leaky_relu,
                           name="subpixel"),
            _conv(self.filters, 3, name="conv"),
            GDN(inverse=True, name="igdn")]
    return main, [SubPixelConv2D(self.filters, 3, 2, name="skip")]


class ResidualBottleneck(_Block):
  """He et al. 2016's bottleneck block, as ELIC's transforms use it (He et
  al. 2022, Fig. 5): conv 1×1 (N/2), ReLU, conv 3×3 (N/2), ReLU, conv 1×1
  (N), + x (a 1×1 conv on the skip when the channels change)."""

  def _layers(self, input_channels):
    middle = max(min(input_channels, self.filters) // 2, 1)
    main = [_conv(middle, 1, activation="relu", name="conv_0"),
            _conv(middle, 3, activation="relu", name="conv_1"),
            _conv(self.filters, 1, name="conv_2")]
    skip = ([] if input_channels == self.filters
            else [_conv(self.filters, 1, name="skip")])
    return main, skip
