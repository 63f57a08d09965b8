"""The serial raster-scan coding loop of context models (Minnen, Ballé and
Toderici 2018, §2 and Fig. 4), shared by their encoders and decoders.

Inside `tf.while_loop`s over latent rows and the positions of each row, in
raster order: the model's `path` computes the distribution parameters of the
C channels at the position from what is decoded before it, and they are
coded on one range coder stream. The decoder runs this loop; encoders
compute the same integer parameters for bands of rows at once
(`EntropyParameters.parallel_rows`) and code them in the same order (an
encoder can run the loop too: qian2021's incremental search does). The
model keeps what it needs in its state (e.g. TensorArray buffers of decoded
latents, written at O(1) and read at O(neighbours) per position, so time
grows linearly with the latent area) and splits its work in two: `row` once
per row (what depends only on the rows above, for the whole row at once) and
`step` per position; and what depends on a band of rows (ψ) once per
band (`bands.rows_per_band`), so that it does not grow with the image.
"""

import collections

import tensorflow as tf

from tflic import bitstream
from tflic.entropy import bands

Scan = collections.namedtuple("Scan", "state band row step decoded")
Scan.__doc__ = """What a model computes in `raster_scan`: the initial state;
band(start, stop) → what `row` needs of the rows [start, stop);
row(y, state, band, start) → what `step` needs of row y; step(y, x, row,
state) → (the distribution parameters of the C channels at (y, x), as the
coder takes them; finish), where finish(ŷ [C] int32) → the next state;
decoded(state) → ŷ [h, w, C] int32."""


def neighbour_slots(height, width, offsets):
  """[h·w, n] int32: for each position (raster order), the buffer slot of each
  neighbour (dy, dx); slot 0 holds zeros (outside the latent)."""
  if not offsets:
    return tf.zeros([height * width, 0], tf.int32)
  rows = tf.range(height)[:, None]
  cols = tf.range(width)[None, :]
  slots = []
  for dy, dx in offsets:
    i, j = rows + dy, cols + dx
    inside = (i >= 0) & (i < height) & (j >= 0) & (j < width)
    slots.append(tf.where(inside, 1 + i * width + j, 0))
  return tf.reshape(tf.stack(slots, -1), [height * width, len(offsets)])


def split_offsets(offsets):
  """Causal offsets → (those in rows above, those to the left in the row, and
  whether the centre is one of them)."""
  above = [(dy, dx) for dy, dx in offsets if dy < 0]
  left = [(dy, dx) for dy, dx in offsets if dy == 0 and dx < 0]
  centre = (0, 0) in offsets
  if len(above) + len(left) + centre != len(offsets):
    raise ValueError(f"offsets must be causal (up to (0, 0)): {offsets}")
  return above, left, centre


def buffer(count, channels, dtype=tf.int32):
  """A TensorArray of `count` + 1 slots of [channels]; slot 0 holds zeros."""
  return tf.TensorArray(dtype, size=count + 1, element_shape=[channels],
                        clear_after_read=False).write(
                            0, tf.zeros([channels], dtype))


def raster_scan(scan, coder, handle, height, width, symbols=None):
  """Encodes `symbols` [h, w, C] (int32, within the coder's [low, high]) if
  given, else decodes them, in raster order with the model's `Scan`.
  Returns (handle, ŷ). A decoded symbol outside [low, high] (only a forged
  stream has one) is clipped before the context uses it, and the decoder
  raises `BitstreamError` at the end: no value beyond the integer networks'
  bounds enters them."""
  if symbols is not None:
    symbols = tf.reshape(symbols, [height * width, -1])

  def row(y, handle, state, outside, band, start):
    features = scan.row(y, state, band, start)

    def position(x, handle, state, outside):
      params, finish = scan.step(y, x, features, state)
      if symbols is None:
        handle, value = coder.decode(handle, *params)
        inside = tf.clip_by_value(value, coder.low, coder.high)
        outside |= tf.reduce_any(inside != value)
        value = inside
      else:
        value = symbols[y * width + x]
        handle = coder.encode(handle, value, *params)
      return x + 1, handle, finish(value), outside

    _, handle, state, outside = tf.while_loop(
        lambda x, *_: x < width, position,
        (tf.constant(0), handle, state, outside), parallel_iterations=1)
    return y + 1, handle, state, outside, band, start

  def band(loop, start, stop):
    features = scan.band(start, stop)
    return tf.while_loop(
        lambda y, *_: y < stop, row, (start,) + loop + (features, start),
        parallel_iterations=1)[1:4]

  handle, state, outside = bands.each(
      (handle, scan.state, tf.constant(False)), height, width, band)
  with tf.control_dependencies([bitstream.require(~outside,
                                                  bitstream.OUT_OF_RANGE)]):
    return handle, scan.decoded(state)
