"""The pyramid atrous module of Wen et al. 2019 (§2.2, Fig. 4), which turns
the hyperprior's output into the decoder's multi-scale assistant
information: parallel dilated 3×3 convolutions (atrous spatial pyramid
pooling of Chen et al. 2017 without the pooling branch), concatenated and
fused by a 1×1 convolution.

The text does not give the rates; we take 1, 2 and 4 (`rates`)."""

import tensorflow as tf


class PyramidAtrous(tf.keras.layers.Layer):
  """ψ → conv1×1([ReLU(conv3×3 dilated r (ψ)) for r in rates])."""

  def __init__(self, filters, rates=(1, 2, 4), **kwargs):
    super().__init__(**kwargs)
    self.filters = filters
    self.rates = tuple(rates)
    self.branches = [
        tf.keras.layers.Conv2D(filters, 3, padding="same", dilation_rate=r,
                               activation="relu", name=f"atrous_{r}")
        for r in self.rates]
    self.fuse = tf.keras.layers.Conv2D(filters, 1, name="fuse")

  def call(self, x):
    return self.fuse(tf.concat([b(x) for b in self.branches], -1))

  def get_config(self):
    return dict(super().get_config(), filters=self.filters, rates=self.rates)
