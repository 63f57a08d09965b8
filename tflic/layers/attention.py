"""The simplified attention module of Cheng et al. 2020 (Fig. 5(b): the
attention module of Liu et al. 2019 without its non-local block)."""

import functools

import tensorflow as tf


class ResidualUnit(tf.keras.layers.Layer):
  """conv 1×1 N → N/2, ReLU, conv 3×3, ReLU, conv 1×1 N/2 → N, + x, ReLU
  (Fig. 5(b), the units of both branches)."""

  def build(self, input_shape):
    n = input_shape[-1]
    conv = functools.partial(tf.keras.layers.Conv2D, dtype=self.dtype_policy)
    self.convs = [
        conv(n // 2, 1, activation="relu", name="conv_0"),
        conv(n // 2, 3, padding="same", activation="relu", name="conv_1"),
        conv(n, 1, name="conv_2")]
    super().build(input_shape)

  def call(self, x):
    h = x
    for layer in self.convs:
      h = layer(h)
    return tf.nn.relu(x + h)


class Attention(tf.keras.layers.Layer):
  """x + trunk(x) · mask(x): trunk = 3 residual units; mask = 3 residual
  units, conv 1×1, sigmoid."""

  def build(self, input_shape):
    policy = self.dtype_policy
    self.trunk = [ResidualUnit(name=f"trunk_{i}", dtype=policy)
                  for i in range(3)]
    self.mask = [ResidualUnit(name=f"mask_{i}", dtype=policy)
                 for i in range(3)] + [
        tf.keras.layers.Conv2D(input_shape[-1], 1, activation="sigmoid",
                               name="mask_conv", dtype=policy)]
    super().build(input_shape)

  def call(self, x):
    trunk, mask = x, x
    for layer in self.trunk:
      trunk = layer(trunk)
    for layer in self.mask:
      mask = layer(mask)
    return x + trunk * mask
