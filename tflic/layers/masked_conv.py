"""Masked convolution of PixelCNN (van den Oord et al. 2016, Fig. 1), the
context model of Minnen, Ballé and Toderici 2018 (Fig. 4, 5×5, type A), and
the checkerboard context of He et al. 2021 (Fig. 3: a non-anchor sees the
anchors around it, the positions at an odd distance)."""

import numpy as np
import tensorflow as tf


MASK_TYPES = ("A", "B", "checkerboard")


def causal_mask(kh, kw, mask_type="A"):
  """[kh, kw] of 0/1: 1 at the positions before the centre in raster order
  (and at the centre for type B); "checkerboard": at the odd offsets
  (dy + dx odd), all around the centre."""
  if mask_type not in MASK_TYPES:
    raise ValueError(f"mask_type must be one of {MASK_TYPES}, not "
                     f"{mask_type!r}")
  if mask_type == "checkerboard":
    dy, dx = np.meshgrid(np.arange(kh) - kh // 2, np.arange(kw) - kw // 2,
                         indexing="ij")
    return ((dy + dx) % 2 != 0).astype(np.float32)
  mask = np.zeros((kh, kw), np.float32)
  mask[:kh // 2] = 1
  mask[kh // 2, :kw // 2 + (mask_type == "B")] = 1
  return mask


def causal_offsets(kh, kw, mask_type="A"):
  """The (dy, dx) of every position `causal_mask` keeps, in raster order."""
  return [(dy - kh // 2, dx - kw // 2)
          for dy, dx in zip(*np.nonzero(causal_mask(kh, kw, mask_type)))]


class MaskedConv2D(tf.keras.layers.Conv2D):
  """Conv2D ("same" padding, stride 1) whose kernel sees only positions before
  the centre in raster order: type A excludes the centre, type B includes it;
  or (type "checkerboard") only the odd offsets."""

  def __init__(self, filters, kernel_size, mask_type="A", **kwargs):
    causal_mask(1, 1, mask_type)  # checks the type
    kwargs.update(padding="same", strides=1)
    super().__init__(filters, kernel_size, **kwargs)
    self.mask_type = mask_type

  def mask(self):
    """[kh, kw] of 0/1: 1 where the kernel may look."""
    return causal_mask(*self.kernel_size, self.mask_type)

  def offsets(self):
    """The (dy, dx) of every position the mask keeps, in raster order."""
    return causal_offsets(*self.kernel_size, self.mask_type)

  def masked_kernel(self):
    return self.kernel * self.mask()[:, :, None, None]

  def offset_kernel(self):
    """The kernel as a matrix [len(offsets) · C_in, filters], rows in the order
    of `offsets()`: the convolution at one position is one matrix product."""
    rows = np.nonzero(self.mask().reshape(-1))[0]
    kernel = tf.reshape(self.kernel, [-1, self.kernel.shape[2], self.filters])
    return tf.reshape(tf.gather(kernel, rows), [-1, self.filters])

  def call(self, inputs):
    outputs = self.convolution_op(inputs, self.masked_kernel())
    if self.use_bias:
      outputs = tf.nn.bias_add(outputs, self.bias)
    return self.activation(outputs) if self.activation else outputs

  def get_config(self):
    return dict(super().get_config(), mask_type=self.mask_type)
