"""A convolution with the output size and alignment of "same" padding whose
border is the input mirrored (tf.pad SYMMETRIC: the edge repeated, so a
two-pixel input pads by two) instead of zeros.

With zero padding a constant image gives latents that differ in their outer
row and column (the convolutions see the zeros); with reflection every
stage maps a constant to a constant, so a flat image codes as flat latents
to the border. Beyond the papers: an option of the factorized model for
SLIMD (`Factorized(padding="reflect")`), whose tile histograms cannot
describe the zero-padded border's one distinct row cheaply."""

import tensorflow as tf


class ReflectConv2D(tf.keras.layers.Conv2D):
  """Conv2D (any kernel and stride) padded by mirroring as "same" pads:
  ⌊p/2⌋ before and ⌈p/2⌉ after, p = max((⌈n/s⌉ − 1)·s + k − n, 0); the
  same weights as the zero-padded Conv2D of the same arguments."""

  def __init__(self, *args, **kwargs):
    kwargs["padding"] = "valid"
    super().__init__(*args, **kwargs)

  def _pads(self, size, axis):
    k, s = self.kernel_size[axis], self.strides[axis]
    total = tf.maximum((-(-size // s) - 1) * s + k - size, 0)
    return [total // 2, total - total // 2]

  def call(self, inputs):
    shape = tf.shape(inputs)
    pads = [[0, 0], self._pads(shape[1], 0), self._pads(shape[2], 1), [0, 0]]
    outputs = self.convolution_op(tf.pad(inputs, pads, mode="SYMMETRIC"),
                                  self.kernel)
    if self.use_bias:
      outputs = tf.nn.bias_add(outputs, self.bias)
    return self.activation(outputs) if self.activation else outputs

  def compute_output_shape(self, input_shape):
    shape = tf.TensorShape(input_shape).as_list()
    for axis in (1, 2):
      if shape[axis] is not None:
        shape[axis] = -(-shape[axis] // self.strides[axis - 1])
    return tf.TensorShape(shape[:-1] + [self.filters])
