"""The inception module of Wen et al. 2019 (§2.1, Fig. 3), the first stage of
the multi-scale encoder's full-resolution path: parallel convolutions of
different kernel sizes and equal channel counts, concatenated and fused by a
1×1 convolution, then GDN (Szegedy et al. 2015's module, strided).

The text gives neither the kernel sizes nor the widths; we take 3, 5 and 7
(`kernel_sizes`) with `filters` channels each, stride 2 like the stage it
replaces."""

import tensorflow as tf
from tflic.layers.gdn import GDN


class Inception(tf.keras.layers.Layer):
  """x → GDN(conv1×1([conv_k(x) for k in kernel_sizes])), down-sampled by
  `strides`."""

  def __init__(self, filters, kernel_sizes=(3, 5, 7), strides=2, **kwargs):
    super().__init__(**kwargs)
    self.filters = filters
    self.kernel_sizes = tuple(kernel_sizes)
    self.strides = strides
    self.branches = [
        tf.keras.layers.Conv2D(filters, k, strides, padding="same",
                               name=f"conv_{k}x{k}")
        for k in self.kernel_sizes]
    self.fuse = tf.keras.layers.Conv2D(filters, 1, name="fuse")
    self.gdn = GDN(name="gdn")

  def call(self, x):
    return self.gdn(self.fuse(tf.concat([b(x) for b in self.branches], -1)))

  def get_config(self):
    return dict(super().get_config(), filters=self.filters,
                kernel_sizes=self.kernel_sizes, strides=self.strides)
