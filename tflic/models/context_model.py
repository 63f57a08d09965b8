"""The context model shared by the autoregressive codecs: Minnen, Ballé and
Toderici 2018 (Fig. 4) and Cheng et al. 2020 (Fig. 2).

A hyperprior ẑ (factorized prior) plus a 5×5 masked convolution on ŷ (type A);
a 1×1 entropy-parameter network combines the context and hyper features into
the parameters of a distribution per element, which subclasses split into a
mixture (logits, means, log-scales; K = 1: a single Gaussian). The three are
one `EntropyParameters` path.

ŷ = round(y) (clipped to [−255, 256]) is what the context model sees in
training (straight-through) and in coding, so the parameters the model trained
with are the ones the coder uses. For coding, the path is converted to an
integer network (`freeze`); the decoder decodes ŷ position by position in
the serial raster-scan loop, the encoder computes the same integer
parameters for bands of rows at once and codes them in the same order: with
one range-coder row per integer (mean, scale) for K = 1 (`GaussianTable`),
with the bisection coder for mixtures. Integers only select the rows, so a file decodes the same
on every machine (DESIGN: docs/design.md).
"""

import tensorflow as tf
import tensorflow_compression as tfc

from tflic.entropy import FactorizedPrior
from tflic.entropy import integer_gaussian as ig
from tflic.entropy import mixture
from tflic.entropy.autoregressive import raster_scan
from tflic.entropy.bisection import BisectionCoder
from tflic.entropy.entropy_parameters import EntropyParameters
from tflic.layers.masked_conv import MaskedConv2D
from tflic.models.base import CODING_DEVICE, CompressionModel

SCALE_MIN = ig.SCALE_MIN


def quantize(y):
  """ŷ = round(y), clipped to the coded range, with straight-through gradients."""
  clipped = tf.clip_by_value(y, mixture.LOW, mixture.HIGH)
  return clipped + tf.stop_gradient(tf.round(clipped) - clipped)


def symbols(y):
  """The integers ŷ of `quantize` (int32)."""
  return tf.cast(tf.round(tf.clip_by_value(y, mixture.LOW, mixture.HIGH)),
                 tf.int32)


def noisy(y):
  """The training stand-in for ŷ in the rate term: y clipped to the coded
  range (as coding clips it), plus uniform noise. Beyond the range the rate
  is that of the edge symbol, which takes the tail mass, not the ~30 bits of
  a zero likelihood without a gradient."""
  clipped = tf.clip_by_value(y, mixture.LOW, mixture.HIGH)
  return clipped + tf.random.uniform(tf.shape(y), -.5, .5)


def entropy_parameters(m, outputs, name="entropy_parameters", prefix="ep",
                       hidden=None):
  """The 1×1 network of Minnen 2018 Fig. 4 (4M → 10M/3 → 8M/3 → outputs), or
  with the given `hidden` widths."""
  conv = tf.keras.layers.Conv2D
  hidden = hidden or (m * 10 // 3, m * 8 // 3)
  return tf.keras.Sequential([
      conv(width, 1, activation=tf.nn.leaky_relu, name=f"{prefix}_{i}")
      for i, width in enumerate(hidden)] + [
          conv(outputs, 1, name=f"{prefix}_{len(hidden)}")], name=name)


def bits(values, weights, means, scales):
  """−log2 p(values) summed per image (p bounded below by 1e-9)."""
  p = mixture.likelihood(values, weights, means, scales)
  return -tf.reduce_sum(tf.math.log(tfc.lower_bound(p, 1e-9)),
                        [1, 2, 3]) / tf.math.log(2.)


def scale(log_scale):
  """σ = exp(log σ), bounded below like the tfc examples' smallest scale."""
  return tfc.lower_bound(tf.exp(log_scale), SCALE_MIN)


def softmax(logits):
  """Softmax over the last axis as exp/sum."""
  e = tf.exp(logits - tf.reduce_max(logits, -1, keepdims=True))
  return e / tf.reduce_sum(e, -1, keepdims=True)


class ContextModel(CompressionModel):
  """Streams: [ẑ (factorized prior), ŷ (context + hyperprior distribution)].

  Subclasses pass the transforms (g_a, g_s, h_a: y → z with `hyper_channels`
  channels, h_s: ẑ → 2M hyper features at the resolution of y) and implement
  `split_parameters`.
  """

  multiple = 64
  mixture_components = 1
  # The encoder codes ŷ in bands of rows of about this many positions, so
  # that its integer parameters and coder inputs do not grow with the image.
  band_positions = 1 << 14

  def __init__(self, transforms, latent_channels, hyper_channels, parameters,
               hidden=None, branches=None, context_kernel=5, lmbda=0.01,
               distortion="mse", **kwargs):
    """parameters: the entropy-parameter outputs per position; hidden: the
    entropy-parameter network's hidden widths (`entropy_parameters`);
    branches: the (context, network, absolute) branches of the path
    (`EntropyParameters`) instead of one masked convolution (kernel
    `context_kernel`, Minnen's 5×5) and that network."""
    super().__init__(lmbda=lmbda, distortion=distortion, **kwargs)
    self.latent_channels = m = latent_channels
    self.hyper_channels = hyper_channels
    (self.analysis, self.synthesis, self.hyper_analysis,
     self.hyper_synthesis) = transforms
    self.hyper_prior = FactorizedPrior(hyper_channels, name="hyper_prior")
    if branches is None:
      self.context_model = MaskedConv2D(2 * m, context_kernel, "A",
                                        name="context_model")
      self.entropy_parameters = entropy_parameters(m, parameters,
                                                   hidden=hidden)
      branches = [([self.context_model], self.entropy_parameters, False)]
    self.parameter_path = EntropyParameters(
        self.hyper_synthesis, split=self.split_parameters, branches=branches,
        name="parameter_path")
    self.coder = None

  def split_parameters(self, params):
    """Entropy parameters [..., P] → (logits or None, means, log σ), each
    [..., M, K]; float or integer alike."""
    raise NotImplementedError

  def distribution(self, params):
    """Float entropy parameters → (weights, means, scales), each [..., M, K]."""
    logits, means, log_scales = self.split_parameters(params)
    weights = tf.ones_like(means) if logits is None else softmax(logits)
    return weights, means, scale(log_scales)

  def call(self, x, training=False):
    y = self.finish_analysis(self.analysis(x))
    z_hat, z_bits = self.hyper_prior(self.hyper_analysis(y), training=training)
    y_hat = quantize(y)
    distribution = self.distribution(self.parameter_path(z_hat, y_hat))
    values = noisy(y) if training else y_hat
    x_hat = self.synthesis(self.synthesis_input(dict(y_hat=y_hat, z_hat=z_hat)))
    return x_hat, z_bits + bits(values, *distribution)

  def freeze(self, calibration):
    self.hyper_prior.freeze()
    y_hats, z_hats = [], []
    for x in calibration:
      y = self.finish_analysis(self.analysis(x))
      y_hats.append(quantize(y))
      z_hats.append(self.hyper_prior.coder.quantize(self.hyper_analysis(y)))
    self.parameter_path.freeze(y_hats, z_hats, self.hyper_prior.offset)
    self.coder = (ig.GaussianTable() if self.mixture_components == 1
                  else BisectionCoder())

  # -- coding -------------------------------------------------------------------
  def _scan(self, handle, z_hat, y_symbols=None):
    """Codes ŷ (or decodes it, without `y_symbols`) in raster order,
    position by position."""
    hyper = self.parameter_path.hyper(self.hyper_prior.symbols(z_hat))[0]
    scan = self.parameter_path.serial(hyper)
    return raster_scan(scan, self.coder, handle, tf.shape(hyper)[0],
                       tf.shape(hyper)[1], y_symbols)

  def encode_y(self, handle, z_hat, y_symbols):
    """Codes ŷ [h, w, M] (int32) into the stream the serial decoder reads.
    The integer parameters of a band of rows are computed at once (exact
    arithmetic: the same integers the decoder computes one by one), band
    after band in raster order (`band_positions`)."""
    path = self.parameter_path
    hyper = path.hyper(self.hyper_prior.symbols(z_hat))
    height, width = tf.shape(y_symbols)[0], tf.shape(y_symbols)[1]
    rows = tf.maximum(self.band_positions // width, 1)
    positions = lambda t: tf.reshape(t, tf.concat([[-1], tf.shape(t)[2:]], 0))

    def band(start, handle):
      stop = tf.minimum(start + rows, height)
      params = path.distribution(
          path.parallel_rows(y_symbols[None], hyper, start, stop)[0])
      return stop, self.coder.encode_positions(
          handle, positions(y_symbols[start:stop]),
          *(positions(t) for t in params))

    return tf.while_loop(lambda start, _: start < height, band,
                         [tf.constant(0), handle], parallel_iterations=1)[1]

  def encode_latents(self, x):
    y = self.analyze(x)
    z = self.hyper_analysis(y)
    with tf.device(CODING_DEVICE):
      # The parameters come from ẑ exactly as the decoder gets it.
      z_streams, z_hat = self.hyper_prior.encode(z)
      y_symbols = symbols(y)[0]
      handle = tfc.create_range_encoder([], self.coder.table)
      y_string = tfc.entropy_encode_finalize(
          self.encode_y(handle, z_hat, y_symbols))
    y_hat = tf.cast(y_symbols, tf.float32)[None]
    return z_streams + [y_string], dict(y_hat=y_hat, z_hat=z_hat)

  def decode_y(self, y_string, z_hat):
    """The serial decoder alone: ŷ [h, w, M] int32 from its stream."""
    with tf.device(CODING_DEVICE):
      handle = tfc.create_range_decoder(y_string, self.coder.table)
      return self._scan(handle, z_hat)[1]

  def decode_latents(self, streams, height, width):
    z_shape = tf.stack([height // self.multiple, width // self.multiple])
    with tf.device(CODING_DEVICE):
      z_hat = self.hyper_prior.decode(streams[:-1], z_shape)
    y_hat = tf.cast(self.decode_y(streams[-1], z_hat), tf.float32)[None]
    return dict(y_hat=y_hat, z_hat=z_hat)
