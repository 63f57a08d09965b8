"""Latents coded in bands of rows (bitstream format 3).

A coder that codes every position of a latent at once (the hyperprior's ŷ,
factorized tensors, SLIMD's code tensor) codes it in bands of
`rows_per_band(width)` rows of about `POSITIONS` positions, one coding call
per band (its bins, then its escapes: `escape.py`), so that what a decoder
holds besides the latent itself (row indices, parameters, coder outputs)
does not grow with the image. The band height is part of the format.
"""

import tensorflow as tf

POSITIONS = 1 << 14


def rows_per_band(width):
  """Latent rows per band for a latent `width` positions wide (≥ 1)."""
  return tf.maximum(POSITIONS // width, 1)


def encode(handle, height, width, code):
  """code(handle, start, stop) → handle, for the bands [start, stop) in
  order."""
  rows = rows_per_band(width)

  def band(start, handle):
    stop = tf.minimum(start + rows, height)
    return stop, code(handle, start, stop)
  return tf.while_loop(lambda start, _: start < height, band,
                       (tf.constant(0), handle), parallel_iterations=1)[1]


def decode(handle, height, width, code, dtype=tf.int32):
  """code(handle, start, stop) → (handle, the band's rows [stop − start,
  width, ...]) for the bands in order → (handle, the rows stacked)."""
  rows = rows_per_band(width)

  def band(i, handle, parts):
    start = i * rows
    handle, part = code(handle, start, tf.minimum(start + rows, height))
    return i + 1, handle, parts.write(i, part)
  count = (height + rows - 1) // rows
  _, handle, parts = tf.while_loop(
      lambda i, *_: i < count, band,
      (tf.constant(0), handle, tf.TensorArray(dtype, size=count,
                                              infer_shape=False)),
      parallel_iterations=1)
  return handle, parts.concat()
