"""Latents coded in bands of rows (bitstream format 3).

A coder that codes every position of a latent at once (the hyperprior's ŷ,
factorized tensors, SLIMD's code tensor) codes it in bands of
`rows_per_band(width)` rows of about `POSITIONS` positions, one coding call
per band (its bins, then its escapes: `escape.py`), so that what a decoder
holds besides the latent itself (row indices, parameters, coder outputs)
does not grow with the image. The band height is part of the format. The
serial decoders and the encoders work in the same bands, for memory (the
hyper features ψ of a band are computed when the band is reached).
"""

import tensorflow as tf

POSITIONS = 1 << 14


def rows_per_band(width):
  """Latent rows per band for a latent `width` positions wide (≥ 1)."""
  return tf.maximum(POSITIONS // width, 1)


def each(state, height, width, body):
  """state = body(state, start, stop) for the bands [start, stop) of a
  latent of height × width positions, in order → the last state."""
  rows = rows_per_band(width)

  def band(start, state):
    stop = tf.minimum(start + rows, height)
    return stop, body(state, start, stop)
  return tf.while_loop(lambda start, _: start < height, band,
                       (tf.constant(0), state), parallel_iterations=1)[1]


def collect(state, height, width, body, dtype=tf.int32):
  """body(state, start, stop) → (state, the band's rows [stop − start, ...])
  for the bands in order → (the last state, the rows stacked)."""
  rows = rows_per_band(width)

  def band(i, state, parts):
    start = i * rows
    state, part = body(state, start, tf.minimum(start + rows, height))
    return i + 1, state, parts.write(i, part)
  count = (height + rows - 1) // rows
  _, state, parts = tf.while_loop(
      lambda i, *_: i < count, band,
      (tf.constant(0), state, tf.TensorArray(dtype, size=count,
                                             infer_shape=False)),
      parallel_iterations=1)
  return state, parts.concat()
