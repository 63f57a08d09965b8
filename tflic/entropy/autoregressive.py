"""The serial raster-scan coding loop of context models (Minnen, Ballé and
Toderici 2018, §2 and Fig. 4), shared by their encoders and decoders.

Inside `tf.while_loop`s over latent rows and the positions of each row, in
raster order: gather the causal neighbours of the position from the buffer of
decoded latents, run the model's step (context + hyper features → distribution
parameters of its C channels), and code the C symbols on one range coder
stream. The step is split in two: the neighbours in the rows above are all
decoded when a row starts, so their part of the context is computed for the
whole row at once (`rows`, matrix-matrix products); per position only the
neighbours to the left remain (`step`). The encoder runs exactly this loop
too, so both sides compute identical parameters. The buffer is a TensorArray:
writing a position and reading its neighbours cost O(1) and O(neighbours), so
time grows linearly with the latent area.
"""

import tensorflow as tf


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
  """Causal offsets → (those in rows above, those to the left in the row)."""
  above = [(dy, dx) for dy, dx in offsets if dy < 0]
  left = [(dy, dx) for dy, dx in offsets if dy == 0 and dx < 0]
  if len(above) + len(left) != len(offsets):
    raise ValueError(f"offsets must be causal (before (0, 0)): {offsets}")
  return above, left


def raster_scan(rows, step, coder, handle, hyper, offsets, channels,
                symbols=None, state=()):
  """Encodes `symbols` [h, w, C] (int32) if given, else decodes them.

  rows(above [w, n_above·C], hyper [w, P]) → features [w, F] of one row, from
  the neighbours above (in the order of `split_offsets`) and the hyper
  features. step(left [n_left·C], feature [F], p, buffer, state) →
  (distribution parameters of the C channels at position p as `coder` takes
  them, finish): finish(ŷ_p [C] float) → the next `state`. `state` is what a
  model keeps besides the buffer (e.g. TensorArrays of the global reference
  model); `buffer` holds ŷ of position q in slot q + 1.
  Returns (handle, symbols [h, w, C] int32).
  """
  height, width = tf.shape(hyper)[0], tf.shape(hyper)[1]
  above, left = split_offsets(offsets)
  above_slots = tf.reshape(neighbour_slots(height, width, above),
                           [height, -1])
  left_slots = neighbour_slots(height, width, left)
  if symbols is not None:
    symbols = tf.reshape(symbols, [height * width, channels])
  buffer = tf.TensorArray(tf.float32, size=height * width + 1,
                          element_shape=[channels], clear_after_read=False)
  buffer = buffer.write(0, tf.zeros([channels]))

  def row(y, handle, buffer, state):
    context = tf.reshape(buffer.gather(above_slots[y]),
                         [width, len(above) * channels])
    features = rows(context, hyper[y])

    def position(x, handle, buffer, state):
      p = y * width + x
      context = tf.reshape(buffer.gather(left_slots[p]), [-1])
      params, finish = step(context, features[x], p, buffer, state)
      if symbols is None:
        handle, value = coder.decode(handle, *params)
      else:
        value = symbols[p]
        handle = coder.encode(handle, value, *params)
      value = tf.cast(value, tf.float32)
      return x + 1, handle, buffer.write(p + 1, value), finish(value)

    _, handle, buffer, state = tf.while_loop(
        lambda x, *_: x < width, position,
        (tf.constant(0), handle, buffer, state), parallel_iterations=1)
    return y + 1, handle, buffer, state

  _, handle, buffer, _ = tf.while_loop(
      lambda y, *_: y < height, row, (tf.constant(0), handle, buffer, state),
      parallel_iterations=1)
  decoded = tf.cast(buffer.stack()[1:], tf.int32)
  return handle, tf.reshape(decoded, [height, width, channels])
