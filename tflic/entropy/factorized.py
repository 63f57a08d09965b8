"""Non-parametric factorized prior (Ballé et al. 2018, "Variational image
compression with a scale hyperprior", appendix 6.1; used as p(y) in Ballé et al.
2017 and as p(z) in the hyperprior models)."""

import tensorflow as tf
import tensorflow_compression as tfc

from tflic.entropy import bands
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

  def _encode(self, symbols):
    """symbols [h, w, C] → the string, coded in bands of rows (`bands`)."""
    shape = tf.shape(symbols)
    lookup = self.table.lookup()

    def code(handle, start, stop):
      band = symbols[start:stop]
      rows, base = self._channel_rows(tf.shape(band))
      return self.table.encode(handle, rows, band, base, lookup)
    return tfc.entropy_encode_finalize(bands.encode(
        tfc.create_range_encoder([], lookup[0]), shape[0], shape[1], code))

  def _decode(self, string, height, width):
    """The string of `_encode` → symbols [h, w, C]."""
    lookup = self.table.lookup()

    def code(handle, start, stop):
      rows, base = self._channel_rows([stop - start, width, self.channels])
      return self.table.decode(handle, rows, base, lookup)
    symbols = bands.decode(tfc.create_range_decoder(string, lookup[0]),
                           height, width, code)[1]
    return tf.reshape(symbols, [height, width, self.channels])

  def encode(self, latent):
    """[1, h, w, C] float -> (`num_streams` scalar strings, the quantized
    latent exactly as `decode` returns it)."""
    symbols = self.symbols(latent)
    if self.slimd is None:
      strings = [self._encode(symbols[0])]
    else:
      strings = list(self.slimd.encode(symbols[0]))
    return strings, self.dequantize(symbols)

  def decode(self, strings, spatial_shape):
    """The strings of `encode`, [h, w] -> [1, h, w, C] quantized latent."""
    if self.slimd is None:
      return self.dequantize(self._decode(strings[0], spatial_shape[0],
                                          spatial_shape[1])[None])
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
