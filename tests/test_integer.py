"""Integer networks: conversion follows the float layers closely, computes
exactly what an int64 NumPy reference computes, refuses layers that could
overflow; the entropy-parameter path's serial and parallel integer forms
agree bit for bit (also with a multi-layer causal context)."""

import numpy as np
import pytest
import tensorflow as tf

from tflic.entropy import autoregressive
from tflic.entropy.entropy_parameters import EntropyParameters, distribution
from tflic.layers import integer
from tflic.layers.masked_conv import MaskedConv2D
from tflic.layers.subpixel import SubPixelConv2D
from tflic.latent_codecs import split_gaussian

RNG = np.random.default_rng(0)


def _layers():
  return [
      tf.keras.layers.Conv2D(12, 3, padding="same", activation=tf.nn.leaky_relu),
      tf.keras.layers.Conv2D(12, 5, 2, padding="same", activation="relu"),
      tf.keras.layers.Conv2DTranspose(12, 5, 2, padding="same",
                                      activation="relu"),
      SubPixelConv2D(6, 3, 2, activation=tf.nn.leaky_relu),
      MaskedConv2D(12, 5, "A"),
      tf.keras.layers.Conv2D(12, 1),
  ]


def _reference(layer, x):
  """The integer layer in NumPy int64: direct convolution sums."""
  kernel = layer.kernel.numpy().astype(np.int64)
  if layer.kind == "deconv":
    return None
  kh, kw = kernel.shape[:2]
  s = layer.strides
  height, width = -(-x.shape[1] // s), -(-x.shape[2] // s)
  pad_h = max((height - 1) * s + kh - x.shape[1], 0)
  pad_w = max((width - 1) * s + kw - x.shape[2], 0)
  padded = np.pad(x.astype(np.int64), [(0, 0), (pad_h // 2, pad_h - pad_h // 2),
                                       (pad_w // 2, pad_w - pad_w // 2), (0, 0)])
  acc = np.zeros((x.shape[0], height, width, kernel.shape[3]), np.int64)
  for i in range(kh):
    for j in range(kw):
      acc += np.einsum("bhwc,cd->bhwd",
                       padded[:, i:i + s * height:s, j:j + s * width:s],
                       kernel[i, j])
  acc += layer.bias.numpy()
  multiplier = layer.multiplier.numpy()
  if layer.negative_multiplier is not None:
    multiplier = np.where(acc < 0, layer.negative_multiplier.numpy(), multiplier)
  y = (acc * multiplier + layer.rounding.numpy()) >> layer.shift.numpy()
  y = np.clip(y, layer.low.numpy(), layer.high.numpy())
  if layer.block > 1:
    y = tf.nn.depth_to_space(y, layer.block).numpy()
  return y


@pytest.mark.parametrize("index", range(6))
def test_conversion_follows_the_float_layer_and_is_exact(index):
  layer = _layers()[index]
  x = RNG.normal(size=(2, 12, 10, 8)).astype(np.float32)
  layer(x)
  for weight in layer.weights:  # biases too
    weight.assign(RNG.normal(size=weight.shape) * .3)
  y = layer(x).numpy()
  x_int = np.clip(np.round(x * 256), -2047, 2047).astype(np.int32)
  scale = integer.hidden_scale(y)
  converted = integer.convert(layer, 1 / 256, 2047, scale)
  y_int = converted(tf.constant(x_int)).numpy()
  assert y_int.dtype == np.int32
  # Rounding the input, weights and output: errors of a few output units.
  error = np.abs(y_int * scale - layer(x_int / 256.).numpy()).max()
  assert error <= 2 * scale.max(), (error, scale.max())
  reference = _reference(converted, x_int)
  if reference is not None:
    np.testing.assert_array_equal(y_int, reference)


@pytest.mark.parametrize("padded", [
    [tf.keras.layers.ZeroPadding2D(2),
     tf.keras.layers.Conv2D(12, 5, 2, padding="valid", activation="relu")],
    [tf.keras.layers.Conv2DTranspose(12, 5, 2, padding="valid"),
     tf.keras.layers.Cropping2D(((2, 1), (2, 1)))]], ids=["pad", "crop"])
def test_explicit_padding_is_converted_with_its_convolution(padded):
  """PyTorch's padding as Keras layers (zeros before a "valid" convolution,
  a crop after a "valid" transposed one) goes into the integer layer: its
  outputs sit where the float layers' do, on even and odd sizes."""
  [(group, layer, padding)] = integer.groups(padded)
  assert group == padded and padding in (((2, 2), (2, 2)), ((2, 1), (2, 1)))
  float_chain = tf.keras.Sequential(padded)
  for shape in ((2, 12, 10, 8), (1, 7, 9, 8)):
    x = RNG.normal(size=shape).astype(np.float32)
    float_chain(x)
    for weight in layer.weights:
      weight.assign(RNG.normal(size=weight.shape) * .3)
    x_int = np.clip(np.round(x * 256), -2047, 2047).astype(np.int32)
    y = float_chain(x_int / 256.).numpy()
    scale = integer.hidden_scale(y)
    converted = integer.convert(layer, 1 / 256, 2047, scale, padding=padding)
    y_int = converted(tf.constant(x_int)).numpy()
    assert y_int.shape == y.shape
    assert np.abs(y_int * scale - y).max() <= 2 * scale.max()


def test_padding_layers_out_of_place_are_refused():
  pad, crop = (tf.keras.layers.ZeroPadding2D(2),
               tf.keras.layers.Cropping2D(1))
  conv, deconv = (tf.keras.layers.Conv2D(4, 3, padding="valid"),
                  tf.keras.layers.Conv2DTranspose(4, 3, padding="valid"))
  for layers in ([conv, crop], [crop], [pad, deconv], [conv, pad]):
    with pytest.raises(ValueError, match="must (follow|precede)"):
      integer.groups(layers)
  # A "valid" convolution without its padding layer is not taken for "same".
  conv(np.zeros((1, 5, 5, 2), np.float32))
  with pytest.raises(ValueError, match="undilated convolutions, 'same'"):
    integer.convert(conv, 1., 10, 1.)


def test_a_layer_beyond_int32_accumulates_wide_and_exactly():
  """A fan-in whose int32 accumulator would leave fewer than 8 weight bits
  (5×5 × 3000 inputs of 12 bits) accumulates in float64, exactly: the
  int64 reference's outputs, with 16-bit weights."""
  layer = tf.keras.layers.Conv2D(3, 5, padding="same", activation="relu")
  layer.build([None, None, None, 3000])
  layer.kernel.assign(RNG.normal(size=layer.kernel.shape) * .05)
  x_int = RNG.integers(-2047, 2048, (1, 6, 7, 3000)).astype(np.int32)
  y = layer(x_int / 256.).numpy()
  narrow = [l for l in _layers() if isinstance(l, tf.keras.layers.Conv2D)][0]
  narrow.build([None, None, None, 8])
  assert not integer.convert(narrow, 1 / 256, 2047, 1.).wide
  converted = integer.convert(layer, 1 / 256, 2047, integer.hidden_scale(y))
  assert converted.wide
  assert np.abs(converted.kernel.numpy()).max() == 2 ** 15 - 1
  y_int = converted(tf.constant(x_int)).numpy()
  np.testing.assert_array_equal(y_int, _reference(converted, x_int))
  with pytest.raises(ValueError, match="no int32 matrix"):
    converted.matrix()


def test_a_layer_that_could_overflow_is_refused():
  wide = tf.keras.layers.Conv2D(2, 1)
  wide.build([None, None, None, 8])
  wide.kernel.assign(tf.ones_like(wide.kernel))
  with pytest.raises(ValueError, match="fan-in too large|8 bits"):
    integer.convert(wide, 1., 2. ** 50, 1.)
  # Hand-made integer weights are checked too.
  with pytest.raises(ValueError, match="exceeds the exact integer range"):
    integer.check_bound(np.full((1, 1, 4, 1), 2 ** 19), [0], [2047] * 4)
  integer.check_bound(np.full((1, 1, 4, 1), 2 ** 16), [0], [2047] * 4)


def test_unknown_activation_is_refused():
  layer = tf.keras.layers.Conv2D(2, 1, activation="tanh")
  layer.build([None, None, None, 3])
  with pytest.raises(ValueError, match="tanh"):
    integer.convert(layer, 1., 10, 1.)


def _split(params):
  return split_gaussian(params)


def _branch(outputs, absolute=False):
  context = [MaskedConv2D(6, 5, "A", activation=tf.nn.leaky_relu),
             MaskedConv2D(8, 3, "B")]
  network = tf.keras.Sequential([
      tf.keras.layers.Conv2D(10, 1, activation=tf.nn.leaky_relu),
      tf.keras.layers.Conv2D(outputs, 1)])
  return context, network, absolute


@pytest.mark.parametrize("separate", [False, True])
def test_serial_and_parallel_parameters_agree_with_a_two_layer_context(
    separate):
  """One context + network, or (separate) one for μ and one for σ on |ŷ|
  (Wen et al. 2019); ψ given in units of 1/8."""
  m = 4
  branches = ([_branch(m), _branch(m, absolute=True)] if separate
              else [_branch(2 * m)])
  path = EntropyParameters(branches, _split)
  y_hat = tf.constant(RNG.integers(-5, 6, (1, 6, 8, m)), tf.float32)
  psi_float = tf.constant(np.round(RNG.normal(size=(1, 6, 8, 6)) * 16) / 8,
                          tf.float32)
  path(psi_float, y_hat)
  path.freeze([y_hat], [psi_float], 1 / 8, 2047)
  psi = tf.cast(tf.round(psi_float * 8), tf.int32)
  y_symbols = tf.cast(y_hat, tf.int32)
  means, scales = distribution(_split, path.parallel(y_symbols, psi))

  class Recorder:
    """A coder that only records the parameters of each position."""

    def encode(self, handle, values, mean, scale):
      return handle.write(handle.size(), tf.concat([mean, scale], 0))

  psi_rows = lambda start, stop: psi[:, start:stop]
  scan = path.serial(psi_rows, 6, 8)
  handle = tf.TensorArray(tf.int32, size=0, dynamic_size=True)
  handle, decoded = autoregressive.raster_scan(scan, Recorder(), handle, 6, 8,
                                               y_symbols[0])
  serial = tf.reshape(handle.stack(), [6, 8, 2 * m]).numpy()
  np.testing.assert_array_equal(decoded, y_symbols[0])
  np.testing.assert_array_equal(serial[..., :m], means[0])
  np.testing.assert_array_equal(serial[..., m:], scales[0])
  # A band of rows gets the same integers from the rows its context reads
  # (2 + 1 rows above, through both layers).
  assert path.rows_above == 3
  params = path.parallel(y_symbols, psi).numpy()
  for start, stop in ((0, 1), (2, 3), (3, 6), (5, 6), (1, 6)):
    np.testing.assert_array_equal(
        path.parallel_rows(y_symbols, psi_rows, start, stop),
        params[:, start:stop])
  # And the integer parameters follow the float ones.
  _, float_means, _ = _split(path(psi_float, y_hat))
  np.testing.assert_allclose(means.numpy() / 64., float_means[..., 0],
                             atol=.05)
  if separate:  # σ's context reads |ŷ|: the sign of ŷ does not change σ
    _, flipped = distribution(_split, path.parallel(-y_symbols, psi))
    np.testing.assert_array_equal(flipped, scales)


def test_sigma_index_rounds_the_grid_index_exactly():
  from tflic.entropy import integer_gaussian as ig  # pylint: disable=import-outside-toplevel
  # No threshold near an integer: float64's last ulps on another machine
  # cannot move one (`sigma_thresholds`).
  midpoints = np.exp(np.log(ig.scales()[:-1]) + ig.scale_step() / 2.)
  units = midpoints * (1 << ig.SIGMA_BITS)
  assert np.abs(units - np.round(units)).min() > 1e-6
  assert np.all(np.diff(ig.sigma_thresholds()) > 0)
  # Every integer σ (units 2^-SIGMA_BITS) from below the grid to above it:
  # the index its training form rounds to, as log σ's head rounds.
  sigma = np.arange(0, (int(ig.SCALE_MAX) << ig.SIGMA_BITS) + 5000, 7)
  index = ig.sigma_index(tf.constant(sigma.reshape(-1, 1), tf.int32))
  log_sigma = np.log(np.maximum(sigma / 2. ** ig.SIGMA_BITS, ig.SCALE_MIN))
  expected = np.clip(np.round(ig.log_scale_index(log_sigma)), 0,
                     ig.NUM_SCALES - 1)
  np.testing.assert_array_equal(index.numpy().reshape(-1), expected)
