"""Integer networks: Ballé, Johnston and Minnen 2019, "Integer networks for
data compression with latent-variable models" (§2, eq. 3–4), with
per-output-channel weight scales and fixed-point requantization as in He et
al. 2022, "Post-training quantization for cross-platform learned image
compression".

A trained float convolution (Conv2D, Conv2DTranspose, MaskedConv2D,
SubPixelConv2D, 1×1) is converted to one whose inputs, weights, biases and
outputs are integers:

  A_c = Σ W_{tap,i,c} X_{tap,i} + B_c                   (int32, exact)
  Y_c = clip((A_c · M_c + 2^(k_c − 1)) >> k_c, L_c, H_c)   (int64, exact)

with M_c the fixed-point multiplier of the channel (a leaky ReLU of slope α
has a second one, α·M_c, for A_c < 0; ReLU clips at L_c = 0). Every
operation is on integers, so the result is the same bits on every machine,
thread count, oneDNN setting and device. The one condition is that no
accumulator overflows: conversion chooses each channel's weight scale so that
Σ|W|·max|X| + |B| < 2^31, and refuses a layer that cannot keep
`MIN_WEIGHT_BITS` of weight precision under that bound. A layer of larger
fan-in (e.g. a 5×5 convolution of 400 inputs, ms2020's slice transforms)
accumulates "wide" instead: in float64, where every partial sum of these
integer products is an integer below 2^53 and so exact in any order, on any
device; its weights keep 16 bits.
"""

import math

import numpy as np
import tensorflow as tf

from tflic.layers.masked_conv import MaskedConv2D
from tflic.layers.subpixel import SubPixelConv2D

ACCUMULATOR_LIMIT = 2 ** 31 - 1  # int32 accumulators
WIDE_ACCUMULATOR_LIMIT = 2 ** 52  # float64 accumulators: exact below 2^53
ACTIVATION_BITS = 12  # hidden activations in [−2047, 2047]
WEIGHT_BITS = 16
MIN_WEIGHT_BITS = 8
CALIBRATION_MARGIN = 4.  # hidden ranges: 4 × the largest calibrated value


def activation_max(bits=ACTIVATION_BITS):
  return 2 ** (bits - 1) - 1


def negative_slope(activation):
  """The slope below 0 of an activation that integers represent exactly:
  1 (identity), 0 (ReLU) or α (leaky ReLU)."""
  if activation in (None, tf.keras.activations.linear):
    return 1.
  if activation in (tf.nn.relu, tf.keras.activations.relu):
    return 0.
  if activation is tf.nn.leaky_relu:
    return .2  # its default alpha
  if hasattr(activation, "negative_slope"):  # one of another slope
    return activation.negative_slope
  raise ValueError(f"an integer network cannot represent the activation "
                   f"{getattr(activation, '__name__', activation)!r}")


class _Ops:
  """The computations of an integer convolution on its values (variables,
  or tensors read once)."""

  @property
  def output_channels(self):
    return int(self.bias.shape[0]) // self.block ** 2

  def accumulate(self, x, channels=None, bias=True):
    """The exact accumulators A (int32; int64 if wide) of x; `channels` =
    (start, stop) uses only those input channels of the kernel (x holds
    just them)."""
    if self.wide:  # on the CPU (Eigen's im2col and GEMM; no GPU FFT)
      with tf.device("/cpu:0"):
        acc = tf.cast(self._convolve(tf.cast(x, tf.float64), tf.cast(
            self.kernel, tf.float64), channels), tf.int64)
      return acc + tf.cast(self.bias, tf.int64) if bias else acc
    acc = self._convolve(x, tf.cast(self.kernel, tf.int32), channels)
    return acc + self.bias if bias else acc

  def _convolve(self, x, kernel, channels):
    if channels is not None:
      kernel = kernel[:, :, channels[0]:channels[1]]
    s = self.strides
    if self.padding is None:  # "same"
      if self.kind == "conv":
        return tf.nn.conv2d(x, kernel, s, "SAME")
      shape = tf.shape(x)
      return tf.nn.conv2d_transpose(
          x, kernel, tf.stack([shape[0], shape[1] * s, shape[2] * s,
                               kernel.shape[2]]), s, "SAME")
    (top, bottom), (left, right) = self.padding
    if self.kind == "conv":  # zeros added, then a "valid" convolution
      return tf.nn.conv2d(tf.pad(x, [[0, 0], [top, bottom], [left, right],
                                     [0, 0]]), kernel, s, "VALID")
    # A "valid" transposed convolution, then cropped.
    shape = tf.shape(x)
    height = (shape[1] - 1) * s + kernel.shape[0]
    width = (shape[2] - 1) * s + kernel.shape[1]
    full = tf.nn.conv2d_transpose(
        x, kernel, tf.stack([shape[0], height, width, kernel.shape[2]]), s,
        "VALID")
    return full[:, top:height - bottom, left:width - right]

  def requantize(self, acc):
    """Accumulators (int32) → outputs Y (int32), along the last axis."""
    acc = tf.cast(acc, tf.int64)
    multiplier = self.multiplier
    if self.negative_multiplier is not None:
      multiplier = tf.where(acc < 0, self.negative_multiplier, multiplier)
    y = tf.bitwise.right_shift(acc * multiplier + self.rounding, self.shift)
    y = tf.cast(tf.clip_by_value(y, self.low, self.high), tf.int32)
    if self.block > 1:
      y = tf.nn.depth_to_space(y, self.block)
    return y

  def __call__(self, x):
    return self.requantize(self.accumulate(x))

  def matrix(self, offsets=None, channels=None):
    """The kernel as a matrix [n · C_in, C_out] for one output position:
    rows for the taps at `offsets` (dy, dx) from the centre, in that order
    (None: a 1×1 kernel), so the convolution there is one matrix product."""
    if self.wide:
      raise ValueError("a wide layer has no int32 matrix form")
    kernel = tf.cast(self.kernel, tf.int32)
    if channels is not None:
      kernel = kernel[:, :, channels[0]:channels[1]]
    if offsets is None:
      return kernel[0, 0]
    kh, kw = kernel.shape[:2]
    rows = [kernel[dy + kh // 2, dx + kw // 2] for dy, dx in offsets]
    if not rows:
      return tf.zeros([0, kernel.shape[3]], tf.int32)
    return tf.concat(rows, 0)


class IntegerConv(tf.Module, _Ops):
  """One integer convolution (`kind` "conv" or "deconv"), optionally
  followed by depth_to_space (`block` > 1, sub-pixel convolution). Inputs
  and outputs are int32 tensors [B, H, W, C]. `padding`: None ("same"), or
  ((top, bottom), (left, right)): zeros added before a "valid" convolution,
  or rows and columns cropped after a "valid" transposed one (`groups`)."""

  _VALUES = ("kernel", "bias", "multiplier", "negative_multiplier", "shift",
             "rounding", "low", "high")

  def __init__(self, kind, kernel, bias, multiplier, shift, low, high,
               negative_multiplier=None, strides=1, block=1, wide=False,
               padding=None, name=None):
    super().__init__(name=name)
    self.padding = None if padding is None else tuple(
        tuple(int(p) for p in pair) for pair in padding)
    self.kind, self.strides, self.block = kind, int(strides), int(block)
    self.wide = bool(wide)
    variable = lambda value, dtype, n: tf.Variable(
        np.asarray(value), dtype=dtype, trainable=False, name=n)
    # Stored in 16 bits when it fits (`convert`'s weights always do: half
    # the SavedModel's integer bytes), computed with in 32.
    kernel = np.asarray(kernel)
    self.kernel = variable(kernel, tf.int16 if np.abs(kernel).max(
        initial=0) < 1 << 15 else tf.int32, "kernel")
    self.bias = variable(bias, tf.int32, "bias")
    self.multiplier = variable(multiplier, tf.int64, "multiplier")
    self.negative_multiplier = (None if negative_multiplier is None else
                                variable(negative_multiplier, tf.int64,
                                         "negative_multiplier"))
    self.shift = variable(shift, tf.int64, "shift")
    self.rounding = variable((np.int64(1) << np.asarray(shift, np.int64)) >> 1,
                             tf.int64, "rounding")
    self.low = variable(low, tf.int64, "low")
    self.high = variable(high, tf.int64, "high")

  def read(self):
    """The layer with its values read once, as tensors: for loops, where
    each use of a variable would be a read per iteration."""
    values = _Ops()
    values.kind, values.strides, values.block, values.wide = (
        self.kind, self.strides, self.block, self.wide)
    values.padding = self.padding
    for name in self._VALUES:
      value = getattr(self, name)
      setattr(values, name, None if value is None else tf.identity(value))
    values.kernel = tf.cast(values.kernel, tf.int32)
    return values


def groups(layers):
  """The convolutions of a Sequential's `layers`, each as (its layers,
  the convolution, explicit padding or None): a ZeroPadding2D goes with the
  ("valid") convolution after it, a Cropping2D with the ("valid") transposed
  convolution before it (PyTorch's padding and output_padding, e.g.
  `models.hyperprior.hyper_transforms`)."""
  zeros, crop = tf.keras.layers.ZeroPadding2D, tf.keras.layers.Cropping2D
  deconv = tf.keras.layers.Conv2DTranspose
  result, pad = [], None
  for layer in layers:
    if isinstance(layer, crop):
      if not result or result[-1][2] is not None or not isinstance(
          result[-1][1], deconv):
        raise ValueError(f"{layer.name}: a Cropping2D must follow a "
                         "transposed convolution")
      group, conv, _ = result[-1]
      result[-1] = (group + [layer], conv, layer.cropping)
    elif pad is not None:
      if isinstance(layer, (zeros, deconv)):
        break
      result.append(([pad, layer], layer, pad.padding))
      pad = None
    elif isinstance(layer, zeros):
      pad = layer
    else:
      result.append(([layer], layer, None))
  if pad is not None:
    raise ValueError(f"{pad.name}: a ZeroPadding2D must precede a "
                     "convolution")
  return result


def _float_parts(layer, explicit=False):
  """(kind, kernel [kh, kw, in, out], bias, strides, block, slope) of a
  trained Keras convolution ("valid" if its padding is `explicit`, else
  "same")."""
  block, conv = 1, layer
  if isinstance(layer, SubPixelConv2D):
    block, conv = layer.scale, layer.conv
  kernel = conv.kernel.numpy().astype(np.float64)
  if isinstance(conv, MaskedConv2D):
    kernel = kernel * conv.mask()[:, :, None, None]
  if isinstance(conv, tf.keras.layers.Conv2DTranspose):
    kind, kernel = "deconv", kernel.transpose(0, 1, 3, 2)
  elif isinstance(conv, tf.keras.layers.Conv2D):
    kind = "conv"
  else:
    raise ValueError(f"cannot convert {type(layer).__name__} to integers")
  pointwise = kernel.shape[:2] == (1, 1) and tuple(conv.strides) == (1, 1)
  expected = "valid" if explicit else "same"
  if (conv.padding != expected and not pointwise) or tuple(
      conv.dilation_rate) != (1, 1):
    raise ValueError(f"{layer.name}: only undilated convolutions, 'same' "
                     "or 'valid' with explicit padding")
  bias = (conv.bias.numpy().astype(np.float64) if conv.use_bias
          else np.zeros(kernel.shape[3]))
  return (kind, kernel, bias, conv.strides[0], block,
          negative_slope(layer.activation))


def convert(layer, input_scale, input_max, output_scale, output_offset=0.,
            low=None, high=None, padding=None, name=None):
  """An `IntegerConv` computing `layer` on integers (`padding`: its
  explicit padding, from `groups`).

  input_scale, input_max [C_in]: input X represents X · input_scale, |X| ≤
  input_max. output_scale, output_offset [C_out]: the output Y represents
  (layer(x) − output_offset) / output_scale, rounded, clipped to [low, high]
  (default ± `activation_max()`). An offset needs a linear layer.
  """
  kind, kernel, bias, strides, block, slope = _float_parts(
      layer, padding is not None)
  out = kernel.shape[3]
  expand = lambda v: np.broadcast_to(
      np.tile(np.broadcast_to(np.asarray(v, np.float64), [out // block ** 2]),
              block ** 2), [out]).copy()
  output_scale, output_offset = expand(output_scale), expand(output_offset)
  if np.any(output_offset) and slope != 1.:
    raise ValueError(f"{layer.name}: an output offset needs a linear layer")
  limit = activation_max()
  low = expand(-limit if low is None else low)
  high = expand(limit if high is None else high)
  input_scale = np.broadcast_to(np.asarray(input_scale, np.float64),
                                kernel.shape[2])
  input_max = np.broadcast_to(np.asarray(input_max, np.float64),
                              kernel.shape[2])
  real = kernel * input_scale[:, None]  # weights per unit of input integer
  bias = bias - output_offset
  # Each channel's weight unit: as fine as 16 bits allow, coarse enough
  # that the worst-case accumulator (with rounding) stays below 2^31, or
  # (wide, if that leaves too few bits) below 2^52.
  worst = np.einsum("hwio,i->o", np.abs(real), input_max) + np.abs(bias)
  rounding = .5 * (kernel.shape[0] * kernel.shape[1] * input_max.sum() + 1)
  largest = np.abs(real).max(axis=(0, 1, 2))
  if rounding >= WIDE_ACCUMULATOR_LIMIT / 2:
    raise ValueError(f"{layer.name}: fan-in too large for exact integer "
                     "accumulation")
  for wide, limit in ((False, ACCUMULATOR_LIMIT),
                      (True, WIDE_ACCUMULATOR_LIMIT)):
    if rounding >= limit / 2:
      continue
    unit = np.maximum(largest / (2 ** (WEIGHT_BITS - 1) - 1),
                      worst / (limit - rounding))
    unit = np.where(unit > 0, unit, 1.)
    weights = np.round(real / unit)
    biases = np.round(bias / unit)
    precise = (largest == 0) | (np.abs(weights).max(axis=(0, 1, 2)) >=
                                2 ** (MIN_WEIGHT_BITS - 1))
    if precise.all():
      break
  else:
    raise ValueError(
        f"{layer.name}: cannot be converted exactly: keeping every "
        f"accumulator below 2^52 leaves fewer than {MIN_WEIGHT_BITS} bits of "
        f"weight precision in {np.sum(~precise)} output channel(s)")
  bound = check_bound(weights, biases, input_max, layer.name, limit)
  # Fixed-point multipliers: Y = A · unit / output_scale, as M / 2^k.
  ratio = unit / output_scale
  room = np.minimum(2. ** 31, 2. ** 62 / np.maximum(bound, 1.))
  shift = np.clip(np.floor(np.log2(room / ratio)), 0, 62)
  multiplier = np.round(ratio * 2 ** shift)
  if np.any(multiplier * bound >= 2. ** 62):
    raise ValueError(f"{layer.name}: output scale too fine for exact "
                     "requantization")
  negative = None
  if slope == 0.:  # ReLU
    low = np.maximum(low, 0)
  elif slope != 1.:
    negative = np.round(slope * ratio * 2 ** shift).astype(np.int64)
  if kind == "deconv":  # tf.nn.conv2d_transpose takes [kh, kw, out, in]
    weights = weights.transpose(0, 1, 3, 2)
  return IntegerConv(kind, weights.astype(np.int32), biases.astype(np.int32),
                     multiplier.astype(np.int64), shift.astype(np.int64),
                     np.round(low).astype(np.int64),
                     np.round(high).astype(np.int64), negative, strides,
                     block, wide, padding, name=name or layer.name)


def check_bound(weights, biases, input_max, name="layer",
                limit=ACCUMULATOR_LIMIT):
  """Σ|W|·max|X| + |B| per output channel, computed exactly; an error if it
  exceeds `limit` (the accumulator would overflow)."""
  weights = np.asarray(weights, np.int64)
  flat = np.abs(weights).reshape(-1, weights.shape[2], weights.shape[3])
  bound = (np.einsum("tio,i->o", flat, np.asarray(input_max, np.int64)) +
           np.abs(np.asarray(biases, np.int64)))
  if np.any(bound > limit):
    raise ValueError(f"{name}: Σ|w|·max|x| + |b| = {int(bound.max())} "
                     f"exceeds the exact integer range {limit}")
  return bound.astype(np.float64)


def hidden_scale(values, bits=ACTIVATION_BITS):
  """Output scales [C] for a hidden layer from calibration outputs [..., C]:
  the power of two at or above the largest magnitude seen, times the margin,
  over the largest integer. Powers of two make the conversion a function of
  the weights alone except where a calibrated maximum crosses one: the
  float calibration differs across machines in its last bits, so the same
  checkpoint exports to the same integer networks everywhere."""
  largest = np.abs(np.asarray(values)).reshape(-1, values.shape[-1]).max(0)
  largest = np.where(largest > 0, largest, 1.)
  return 2. ** np.ceil(np.log2(largest * CALIBRATION_MARGIN /
                               activation_max(bits)))


def power_of_two_scale(values, bits=ACTIVATION_BITS):
  """One input scale 2^−a for values [..., C] (e.g. the hyper-latent ẑ), so
  that X = ẑ · 2^a needs only integer arithmetic; the largest magnitude seen
  times the margin fits."""
  largest = max(float(np.abs(np.asarray(values)).max()), 1e-3)
  return 2. ** -math.floor(math.log2(
      activation_max(bits) / (largest * CALIBRATION_MARGIN)))
