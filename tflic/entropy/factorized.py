"""Non-parametric factorized prior (Ballé et al. 2018, "Variational image
compression with a scale hyperprior", appendix 6.1; used as p(y) in Ballé et al.
2017 and as p(z) in the hyperprior models)."""

import tensorflow as tf
import tensorflow_compression as tfc

from tflic.entropy import escape

# The integers a factorized prior codes (the encoder clips to them): a
# forged stream cannot decode a symbol beyond them.
LOW, HIGH = -(1 << 15), (1 << 15) - 1


class FactorizedPrior(tf.keras.layers.Layer):
  """One learned univariate density per channel, convolved with U(-1/2, 1/2).

  `call` returns the straight-through quantized latent (for the synthesis) and its
  rate in bits per image, estimated with additive uniform noise when training.
  `freeze()` fixes the range coding tables (tensorflow-compression's, coded
  with a bounded escape, `escape.py`); `encode`/`decode` need it. Coded
  symbols are within [LOW, HIGH].
  `use_slimd(coder)` codes the same integers with SLIMD's local entropy
  models instead (`entropy.slimd`; two streams: side information, code).
  """

  def __init__(self, channels, range_coder_precision=16, **kwargs):
    super().__init__(**kwargs)
    self.channels = channels
    self.range_coder_precision = range_coder_precision
    self.prior = tfc.NoisyDeepFactorized(batch_shape=[channels])
    self.coder = None
    self.slimd = None

  def use_slimd(self, coder):
    """Codes with a `Slimd` coder (None: with this prior's tables)."""
    if coder is not None and coder.channels != self.channels:
      raise ValueError(f"the SLIMD dictionary is for {coder.channels} "
                       f"channels, the prior codes {self.channels}")
    self.slimd = coder

  @property
  def num_streams(self):
    return 1 if self.slimd is None else 2

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
    self.table = escape.EscapeTable(
        escape.rows_of_lookup(self.coder.cdf.numpy()), LOW, HIGH,
        name="table")

  def _channel_rows(self, shape):
    """Each element's row (its channel) and base (its row's first symbol)."""
    rows = tf.broadcast_to(tf.range(self.channels), shape)
    return rows, tf.gather(self.coder.cdf_offset, rows)

  def encode(self, latent):
    """[1, h, w, C] float -> (`num_streams` scalar strings, the quantized
    latent exactly as `decode` returns it)."""
    symbols = self.symbols(latent)
    if self.slimd is None:
      handle = tfc.create_range_encoder([], self.table.lookup()[0])
      rows, base = self._channel_rows(tf.shape(symbols))
      strings = [tfc.entropy_encode_finalize(self.table.encode(
          handle, rows, symbols, base))]
    else:
      strings = list(self.slimd.encode(symbols[0]))
    return strings, self.dequantize(symbols)

  def decode(self, strings, spatial_shape):
    """The strings of `encode`, [h, w] -> [1, h, w, C] quantized latent."""
    if self.slimd is None:
      shape = tf.concat([[1], spatial_shape, [self.channels]], 0)
      handle = tfc.create_range_decoder(strings[0], self.table.lookup()[0])
      return self.dequantize(self.table.decode(
          handle, *self._channel_rows(shape))[1])
    return self.dequantize(self.slimd.decode(
        strings[0], strings[1], spatial_shape[0], spatial_shape[1])[None])

  @property
  def offset(self):
    """The quantization offsets [C] of the frozen coder: latent = integer +
    offset."""
    offset = self.coder.quantization_offset
    return tf.zeros([self.channels]) if offset is None else offset

  def symbols(self, latent):
    """The integers of a latent, clipped to [LOW, HIGH] (int32); of a
    quantized latent, exactly."""
    return tf.cast(tf.clip_by_value(tf.round(latent - self.offset), LOW, HIGH),
                   tf.int32)

  def dequantize(self, symbols):
    """The quantized latent of its integers (as the range coder's decoder
    returns it)."""
    return tf.cast(symbols, tf.float32) + self.offset

  def get_config(self):
    return dict(super().get_config(), channels=self.channels,
                range_coder_precision=self.range_coder_precision)
