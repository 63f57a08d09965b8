"""The centred strided convolutions (PyTorch's padding): output sizes, the
grid (output i on input 2i) and the transposed one as the adjoint."""

import numpy as np
import pytest
import tensorflow as tf

from tflic.layers.centred_conv import (CentredStridedConv,
                                       CentredStridedConvTranspose)


@pytest.mark.parametrize("kernel", [3, 5])
@pytest.mark.parametrize("size", [8, 9])
def test_transposed_is_the_adjoint(kernel, size):
  """<conv(x), y> = <x, conv_T(y)> with one kernel: the same grid."""
  conv = CentredStridedConv(4, kernel, use_bias=False)
  transposed = CentredStridedConvTranspose(3, kernel, use_bias=False)
  x = tf.random.stateless_normal([1, size, size + 2, 3], [1, 2])
  y_shape = conv(x).shape
  assert y_shape[1:3] == (-(-size // 2), -(-(size + 2) // 2))
  transposed.build(y_shape)
  transposed.kernel.assign(conv.kernel)
  y = tf.random.stateless_normal(y_shape, [3, 4])
  back = transposed(y)
  # (in graphs, of known and of unknown size, too)
  for signature in (None, [tf.TensorSpec([None, None, None, 4])]):
    traced = tf.function(transposed, input_signature=signature)(y)
    np.testing.assert_array_equal(traced, back)
  assert back.shape[1:3] == (2 * y_shape[1], 2 * y_shape[2])
  back = back[:, :size, :size + 2]  # (an odd input's last row: beyond)
  np.testing.assert_allclose(float(tf.reduce_sum(conv(x) * y)),
                             float(tf.reduce_sum(x * back)), rtol=1e-4)


def test_output_is_centred_on_even_inputs():
  conv = CentredStridedConv(1, 5, use_bias=False,
                            kernel_initializer="zeros")
  conv.build([1, 8, 8, 1])
  kernel = np.zeros([5, 5, 1, 1], np.float32)
  kernel[2, 2] = 1.  # the centre tap: output i = input 2i
  conv.kernel.assign(kernel)
  x = tf.reshape(tf.range(64, dtype=tf.float32), [1, 8, 8, 1])
  np.testing.assert_array_equal(conv(x)[0, :, :, 0], x[0, ::2, ::2, 0])
