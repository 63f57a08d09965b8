"""The non-parametric factorized prior (Ballé et al. 2018, "Variational
image compression with a scale hyperprior", appendix 6.1) as a latent codec:
p(y) of Ballé et al. 2017 (`factorized`) and p(z) of the hyperprior models."""

import contextlib
import functools

import tensorflow as tf
import tensorflow_compression as tfc
from tensorflow_compression.python.distributions import helpers

from tflic.entropy import bands
from tflic.entropy import escape
from tflic.entropy.noisy_rate import noisy_rate
from tflic.latent_codecs.base import LatentCodec

LOW, HIGH = escape.FACTORIZED_RANGE
TAIL_MASS = 2 ** -8  # tensorflow-compression's default


@contextlib.contextmanager
def _located(prior):
  """Within: `prior` answers tensorflow-compression's questions for its
  coding tables (median, tails) with values found once, in one tf.function.
  The library finds them by gradient descent, run eagerly (about 6 s per
  table); as one graph the same iterations take a tenth of that and give
  the same values (compared on every golden model)."""
  located = tf.function(autograph=False, func=lambda: (
      helpers.quantization_offset(prior),
      helpers.lower_tail(prior, TAIL_MASS),
      helpers.upper_tail(prior, TAIL_MASS)))()
  names = ("_quantization_offset", "_lower_tail", "_upper_tail")
  for name, value in zip(names, located):
    setattr(prior, name, lambda *_, value=value: value)
  try:
    yield
  finally:
    for name in names:
      delattr(prior, name)


def training_offset(prior, iterations=48, bound=2. ** 16):
  """The quantization offsets [C] of `prior` in a training step: its
  medians (where the base density's logit CDF is 0, as tensorflow-
  compression's `_quantization_offset`) mod 1, by bisection of
  [−bound, bound]: `iterations` evaluations of the CDF, without gradients.
  tensorflow-compression's search takes 100 or more Adam steps, each with
  a gradient, and was 8 % of a hyperprior's training step."""
  base = prior.base
  logit = base._logits_cumulative  # pylint: disable=protected-access
  shape = tf.concat([[1], base.batch_shape_tensor()], 0)  # as tfc calls it

  def halve(_, low, high):
    middle = (low + high) / 2
    below = logit(middle) < 0
    return _ + 1, tf.where(below, middle, low), tf.where(below, high, middle)
  low = tf.fill(shape, tf.constant(-bound, base.dtype))
  _, low, high = tf.while_loop(
      lambda i, *_: i < iterations, halve, (0, low, -low))
  median = tf.reshape((low + high) / 2, base.batch_shape_tensor())
  return tf.stop_gradient(median - tf.round(median))


def _float64(prior):
  """A float64 copy of a `NoisyDeepFactorized` prior, for its coding tables
  (`FactorizedPrior.freeze`)."""
  base = prior.base
  copy = tfc.NoisyDeepFactorized(
      batch_shape=base.batch_shape, num_filters=base.num_filters,
      init_scale=base.init_scale, dtype=tf.float64)
  for target, source in zip(copy.base.variables, base.variables):
    target.assign(tf.cast(source, tf.float64))
  return copy


class FactorizedPrior(LatentCodec):
  """One learned univariate density per channel, convolved with U(-1/2, 1/2)
  (tensorflow-compression's `NoisyDeepFactorized`).

  `density_layers`: hidden layers of 3 filters of each density
  (tensorflow-compression's default 2; CompressAI's EntropyBottleneck has
  4, which learn faster from the density's wide start: docs/training.md).

  Training: the straight-through quantized latent (`quantization="noise"`:
  the latent + u, Ballé et al. 2018, §2) and its rate, estimated with
  additive uniform noise (`noisy_rate`, with its `likelihood_bound`).
  `freeze` fixes tensorflow-compression's range-coding tables (stored as
  variables), which this codec codes with a bounded escape
  (`entropy/escape.py`), in bands of rows (`entropy/bands.py`). Coded
  symbols are within [LOW, HIGH]."""

  def __init__(self, channels, range_coder_precision=16, key="y_hat",
               quantization="round", density_layers=2, likelihood_bound=0.,
               **kwargs):
    super().__init__(key=key, **kwargs)
    self.channels = channels
    self.quantization = quantization
    self.likelihood_bound = likelihood_bound
    self.range_coder_precision = range_coder_precision
    self.prior = tfc.NoisyDeepFactorized(batch_shape=[channels],
                                         num_filters=(3,) * density_layers)
    self.entropy_model = None
    self.table = None

  @functools.cached_property  # (not an attribute Keras tracks)
  def _eager_offset(self):
    """The prior's quantization offsets as one tf.function, as `_located`
    finds them, not by the eager search; made once, so that eager calls
    do not trace it anew."""
    return tf.function(autograph=False, func=lambda: (
        helpers.quantization_offset(self.prior)))

  def _model(self, training=False):
    """The frozen entropy model, or the training form's (run eagerly, e.g.
    building a model's variables, with `_eager_offset`; in a training step
    with `training_offset`)."""
    if self.entropy_model is not None:
      return self.entropy_model
    if training:
      offset = training_offset(self.prior)
    else:
      offset = self._eager_offset() if tf.executing_eagerly() else None
    return tfc.ContinuousBatchedEntropyModel(
        self.prior, coding_rank=3, compression=False,
        quantization_offset=offset)

  def call(self, latent, training=False, side=None):
    """In training, the bits of ỹ = latent + u (`noisy_rate`) and, with
    `quantization="noise"`, that ỹ; else the rounded latent."""
    del side
    if training:
      noisy, bits = noisy_rate(latent, self.prior.log_prob,
                               self.likelihood_bound)
      if self.quantization == "noise":
        return {self.key: noisy}, bits
      return {self.key: self._model(training).quantize(latent)}, bits
    model = self._model()
    _, bits = model(latent, training=False)
    return {self.key: model.quantize(latent)}, bits

  def freeze(self, latents=None, side=None):
    """Builds the range coding tables from the current density, in float64:
    its median (the quantization offsets), tails and probabilities are found
    by float computations that end a few ulps apart on other machines
    (oneDNN on or off, AVX-512 or not), and in float32 a few ulps move a
    quantized probability or an offset; in float64 they do not reach
    float32 and the tables' 16-bit integers, so the same weights freeze to
    the same tables, and model identity, everywhere."""
    del latents, side
    precise = _float64(self.prior)
    with _located(precise):
      self.entropy_model = tfc.ContinuousBatchedEntropyModel(
          precise, coding_rank=3, compression=True, tail_mass=TAIL_MASS,
          range_coder_precision=self.range_coder_precision,
          bottleneck_dtype=tf.float32)
    # Its likelihoods (`call`) are the trained float32 prior's, as before.
    self.entropy_model._prior = self.prior  # pylint: disable=protected-access
    self.table = escape.EscapeTable(
        escape.rows_of_lookup(self.entropy_model.cdf.numpy()), LOW, HIGH,
        name="table")

  def quantize(self, latent):
    """The quantized latent as coding makes it (frozen)."""
    return self.entropy_model.quantize(latent)

  @property
  def offset(self):
    """The quantization offsets [C] of the frozen coder: latent = integer +
    offset."""
    offset = self.entropy_model.quantization_offset
    return tf.zeros([self.channels]) if offset is None else offset

  def symbols(self, latent):
    """The integers of a latent, clipped to [LOW, HIGH] (int32); of a
    quantized latent, exactly."""
    return tf.cast(tf.clip_by_value(tf.round(latent - self.offset), LOW, HIGH),
                   tf.int32)

  def dequantize(self, symbols):
    """The quantized latent of its integers (as the decoder returns it)."""
    return tf.cast(symbols, tf.float32) + self.offset

  def _channel_rows(self, shape):
    """Each element's row (its channel) and base (its row's first symbol)."""
    rows = tf.broadcast_to(tf.range(self.channels), shape)
    return rows, tf.gather(self.entropy_model.cdf_offset, rows)

  def encode(self, latent, side=None):
    del side
    symbols = self.symbols(latent)[0]
    shape = tf.shape(symbols)
    lookup = self.table.lookup()

    def code(handle, start, stop):
      band = symbols[start:stop]
      rows, base = self._channel_rows(tf.shape(band))
      return self.table.encode(handle, rows, band, base, lookup)
    string = tfc.entropy_encode_finalize(bands.each(
        tfc.create_range_encoder([], lookup[0]), shape[0], shape[1], code))
    return [string], {self.key: self.dequantize(symbols[None])}

  def decode(self, streams, shape, side=None):
    del side
    height, width = shape[0], shape[1]
    lookup = self.table.lookup()

    def code(handle, start, stop):
      rows, base = self._channel_rows([stop - start, width, self.channels])
      return self.table.decode(handle, rows, base, lookup)
    symbols = bands.collect(tfc.create_range_decoder(streams[0], lookup[0]),
                            height, width, code)[1]
    return {self.key: self.dequantize(
        tf.reshape(symbols, [1, height, width, self.channels]))}

  @property
  def factorized_codec(self):
    return self

  @property
  def prior_codec(self):
    """The factorized prior itself (SLIMD's codec wraps one)."""
    return self

  def factorized_tensor(self, latent):
    return latent

  def replace_factorized(self, codec):
    return codec

  def get_config(self):
    return dict(super().get_config(), channels=self.channels,
                range_coder_precision=self.range_coder_precision)
