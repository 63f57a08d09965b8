"""Non-parametric factorized prior (Ballé et al. 2018, "Variational image
compression with a scale hyperprior", appendix 6.1; used as p(y) in Ballé et al.
2017 and as p(z) in the hyperprior models)."""

import tensorflow as tf
import tensorflow_compression as tfc


class FactorizedPrior(tf.keras.layers.Layer):
  """One learned univariate density per channel, convolved with U(-1/2, 1/2).

  `call` returns the straight-through quantized latent (for the synthesis) and its
  rate in bits per image, estimated with additive uniform noise when training.
  `freeze()` fixes the range coding tables; `compress`/`decompress` need it.
  """

  def __init__(self, channels, range_coder_precision=16, **kwargs):
    super().__init__(**kwargs)
    self.channels = channels
    self.range_coder_precision = range_coder_precision
    self.prior = tfc.NoisyDeepFactorized(batch_shape=[channels])
    self.coder = None

  def _model(self):
    if self.coder is not None:
      return self.coder
    return tfc.ContinuousBatchedEntropyModel(
        self.prior, coding_rank=3, compression=False)

  def call(self, latent, training=False):
    model = self._model()
    _, bits = model(latent, training=training)
    return model.quantize(latent), bits

  def freeze(self):
    """Builds the range coding tables from the current density (stored as variables)."""
    self.coder = tfc.ContinuousBatchedEntropyModel(
        self.prior, coding_rank=3, compression=True,
        range_coder_precision=self.range_coder_precision)

  def compress(self, latent):
    """[B, h, w, C] float -> [B] strings."""
    return self.coder.compress(latent)

  def decompress(self, strings, spatial_shape):
    """[B] strings, [h, w] -> [B, h, w, C] quantized latent."""
    return self.coder.decompress(strings, spatial_shape)

  @property
  def offset(self):
    """The quantization offsets [C] of the frozen coder: latent = integer +
    offset."""
    offset = self.coder.quantization_offset
    return tf.zeros([self.channels]) if offset is None else offset

  def symbols(self, latent):
    """The integers of a quantized latent (int32), exactly."""
    return tf.cast(tf.round(latent - self.offset), tf.int32)

  def get_config(self):
    return dict(super().get_config(), channels=self.channels,
                range_coder_precision=self.range_coder_precision)
