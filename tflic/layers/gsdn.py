"""Generalized subtractive and divisive normalization (GSDN) of Qian et al.
2021, "Learning accurate entropy model with global reference" (eq. 5):

  w_i = (u_i − (ν_i + Σ_j τ_ij u_j)) / (β_i + Σ_j γ_ij u_j²)^½

and its inverse for the decoder, IGSDN (its own parameters):

  û_i = ŵ_i · (β̂_i + Σ_j γ̂_ij ŵ_j²)^½ + (ν̂_i + Σ_j τ̂_ij ŵ_j).

2·(N + N²) parameters shared over space. β and γ use tensorflow-compression's
GDN reparameterization (`tfc.GDNParameter`); the matrices are stored [j, i]
like tfc's γ, so with ν = τ = 0 the layers are tfc's GDN / inverse GDN with
α = 2, ε = ½ on the same β, γ.
"""

import tensorflow as tf
import tensorflow_compression as tfc


class GSDN(tf.keras.layers.Layer):
  """GSDN (eq. 5) on channels-last inputs; `inverse=True` gives IGSDN."""

  def __init__(self, inverse=False, **kwargs):
    super().__init__(**kwargs)
    self.inverse = bool(inverse)

  def build(self, input_shape):
    channels = tf.TensorShape(input_shape)[-1]
    if channels is None:
      raise ValueError("GSDN needs a known number of channels")
    self.beta_parameter = tfc.GDNParameter(
        tf.ones([channels]), name="beta", minimum=1e-6)
    self.gamma_parameter = tfc.GDNParameter(
        .1 * tf.eye(channels), name="gamma", minimum=0)
    self.nu = self.add_weight("nu", [channels], initializer="zeros")
    self.tau = self.add_weight("tau", [channels, channels], initializer="zeros")
    super().build(input_shape)

  @property
  def beta(self):
    return self.beta_parameter()

  @property
  def gamma(self):
    return self.gamma_parameter()

  @staticmethod
  def _mix(x, matrix):
    """Σ_j matrix[j, i] x_j at every position (a 1×1 convolution)."""
    rank = x.shape.rank
    if rank == 2:
      return tf.linalg.matmul(x, matrix)
    kernel = tf.reshape(matrix, (rank - 2) * [1] + matrix.shape.as_list())
    return tf.nn.convolution(x, kernel, padding="VALID")

  def call(self, inputs):
    scale = tf.math.sqrt(tf.nn.bias_add(
        self._mix(tf.math.square(inputs), self.gamma), self.beta))
    mean = tf.nn.bias_add(self._mix(inputs, self.tau), self.nu)
    if self.inverse:
      return inputs * scale + mean
    return (inputs - mean) / scale

  def get_config(self):
    return dict(super().get_config(), inverse=self.inverse)
