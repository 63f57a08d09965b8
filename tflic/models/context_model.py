"""The context model shared by the autoregressive codecs: Minnen, Ballé and
Toderici 2018 (Fig. 4) and Cheng et al. 2020 (Fig. 2).

A hyperprior ẑ (factorized prior) plus a 5×5 masked convolution on ŷ (type A);
a 1×1 entropy-parameter network combines the context and hyper features into
the parameters of a distribution per element, which subclasses turn into a
mixture (weights, means, scales; K = 1: a single Gaussian).

ŷ = round(y) (clipped to [−255, 256]) is what the context model sees in
training (straight-through) and in coding, so the parameters the model trained
with are the ones the coder uses. ŷ is coded exactly by the bisection coder in
the serial raster-scan loop; training uses the masked convolution in parallel.
The encoder runs the same per-position step as the decoder (DESIGN.md §3).
"""

import tensorflow as tf
import tensorflow_compression as tfc

from tflic.entropy import FactorizedPrior
from tflic.entropy import mixture
from tflic.entropy.autoregressive import raster_scan, split_offsets
from tflic.entropy.bisection import BisectionCoder
from tflic.layers.masked_conv import MaskedConv2D
from tflic.models.base import CompressionModel

SCALE_MIN = .11


def quantize(y):
  """ŷ = round(y), clipped to the coded range, with straight-through gradients."""
  clipped = tf.clip_by_value(y, mixture.LOW, mixture.HIGH)
  return clipped + tf.stop_gradient(tf.round(clipped) - clipped)


def entropy_parameters(m, outputs, name="entropy_parameters", prefix="ep"):
  """The 1×1 network of Minnen 2018 Fig. 4 (4M → 10M/3 → 8M/3 → outputs)."""
  conv = tf.keras.layers.Conv2D
  return tf.keras.Sequential([
      conv(m * 10 // 3, 1, activation=tf.nn.leaky_relu, name=f"{prefix}_0"),
      conv(m * 8 // 3, 1, activation=tf.nn.leaky_relu, name=f"{prefix}_1"),
      conv(outputs, 1, name=f"{prefix}_2"),
  ], name=name)


def dense_layers(layers):
  """1×1 convolution layers as [(kernel [in, out], bias, activation)], to run
  on one position with matrix products."""
  return [(tf.reshape(l.kernel, l.kernel.shape[2:]), l.bias, l.activation)
          for l in layers]


def run_dense(layers, h):
  """`dense_layers` on h [1, in]."""
  for kernel, bias, activation in layers:
    h = activation(tf.matmul(h, kernel) + bias)
  return h


def bits(values, weights, means, scales):
  """−log2 p(values) summed per image (p bounded below by 1e-9)."""
  p = mixture.likelihood(values, weights, means, scales)
  return -tf.reduce_sum(tf.math.log(tfc.lower_bound(p, 1e-9)),
                        [1, 2, 3]) / tf.math.log(2.)


def scale(log_scale):
  """σ = exp(log σ), bounded below like the tfc examples' smallest scale."""
  return tfc.lower_bound(tf.exp(log_scale), SCALE_MIN)


class ContextModel(CompressionModel):
  """Streams: [ẑ (factorized prior), ŷ (context + hyperprior distribution)].

  Subclasses set the transforms `analysis`, `synthesis`, `hyper_analysis`
  (y → z, `hyper_channels` channels) and `hyper_synthesis` (ẑ → 2M hyper
  features, at the resolution of y), and implement `distribution`.
  """

  multiple = 64
  num_streams = 2

  def __init__(self, latent_channels, hyper_channels, parameters,
               lmbda=0.01, distortion="mse", **kwargs):
    """parameters: the entropy-parameter outputs per position."""
    super().__init__(lmbda=lmbda, distortion=distortion, **kwargs)
    self.latent_channels = m = latent_channels
    self.hyper_channels = hyper_channels
    self.hyper_prior = FactorizedPrior(hyper_channels, name="hyper_prior")
    self.context_model = MaskedConv2D(2 * m, 5, "A", name="context_model")
    self.entropy_parameters = entropy_parameters(m, parameters)
    self.coder = BisectionCoder()

  def distribution(self, params):
    """Entropy parameters [..., P] → (weights, means, scales), each [..., M, K]."""
    raise NotImplementedError

  def call(self, x, training=False):
    y = self.analysis(x)
    z_hat, z_bits = self.hyper_prior(self.hyper_analysis(y), training=training)
    y_hat = quantize(y)
    params = self.entropy_parameters(tf.concat(
        [self.context_model(y_hat), self.hyper_synthesis(z_hat)], -1))
    distribution = self.distribution(params)
    values = y + tf.random.uniform(tf.shape(y), -.5, .5) if training else y_hat
    return self.synthesis(y_hat), z_bits + bits(values, *distribution)

  def freeze(self):
    self.hyper_prior.freeze()

  # -- the serial coder -----------------------------------------------------------
  def _context_kernels(self):
    """The masked convolution split as `raster_scan` feeds it: a function of
    the neighbours above (with the bias) and the kernel of the left ones."""
    n_above = len(split_offsets(self.context_model.offsets())[0])
    kernel = self.context_model.offset_kernel()
    above_kernel, left_kernel = tf.split(
        kernel, [n_above * self.latent_channels, -1], 0)
    return (lambda above: tf.matmul(above, above_kernel) +
            self.context_model.bias), left_kernel

  def _coding_functions(self, height, width):
    """The per-position computation of `call` for the serial coder, split as
    `raster_scan` takes it: the masked convolution and the first 1×1 layer
    are linear, so the rows-above part of the context and the hyper features
    enter through `rows` (a whole row at once); per position `step` adds the
    left neighbours' part and runs the rest as matrix-vector products."""
    context_above, left_kernel = self._context_kernels()
    first, *rest = self.entropy_parameters.layers
    first_kernel = tf.reshape(first.kernel, first.kernel.shape[2:])
    context_kernel, hyper_kernel = tf.split(
        first_kernel, [self.context_model.filters, -1], 0)
    left_kernel = tf.matmul(left_kernel, context_kernel)
    rest = dense_layers(rest)

    def rows(above, hyper):
      return (tf.matmul(context_above(above), context_kernel) +
              tf.matmul(hyper, hyper_kernel) + first.bias)

    def step(left, feature, p, buffer, state):
      del p, buffer  # the context is all in `left` and `feature`
      h = first.activation(tf.matmul(left[None], left_kernel) + feature)
      return self.distribution(run_dense(rest, h)[0]), lambda value: state
    return rows, step, ()

  def _scan(self, handle, z_hat, symbols=None):
    hyper = self.hyper_synthesis(z_hat)[0]
    rows, step, state = self._coding_functions(*tf.unstack(tf.shape(hyper)[:2]))
    return raster_scan(rows, step, self.coder, handle, hyper,
                       self.context_model.offsets(), self.latent_channels,
                       symbols, state)

  def encode_latents(self, x):
    y = self.analysis(x)
    z = self.hyper_analysis(y)
    z_strings = self.hyper_prior.compress(z)
    # The parameters come from the decoded ẑ, exactly as the decoder gets them.
    z_hat = self.hyper_prior.decompress(z_strings, tf.shape(z)[1:3])
    symbols = tf.cast(tf.round(tf.clip_by_value(y, mixture.LOW, mixture.HIGH)),
                      tf.int32)[0]
    handle = tfc.create_range_encoder([], self.coder.table)
    handle, _ = self._scan(handle, z_hat, symbols)
    y_string = tfc.entropy_encode_finalize(handle)
    y_hat = tf.cast(symbols, tf.float32)[None]
    return [z_strings[0], y_string], dict(y_hat=y_hat, z_hat=z_hat)

  def decode_y(self, y_string, z_hat):
    """The serial decoder alone: ŷ [h, w, M] int32 from its stream."""
    handle = tfc.create_range_decoder(y_string, self.coder.table)
    return self._scan(handle, z_hat)[1]

  def decode_latents(self, streams, height, width):
    z_shape = tf.stack([height // self.multiple, width // self.multiple])
    z_hat = self.hyper_prior.decompress(tf.reshape(streams[0], [1]), z_shape)
    y_hat = tf.cast(self.decode_y(streams[1], z_hat), tf.float32)[None]
    return self.synthesis(y_hat), dict(y_hat=y_hat, z_hat=z_hat)
