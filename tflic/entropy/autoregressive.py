"""The serial raster-scan coding loop of context models (Minnen, Ballé and
Toderici 2018, §2 and Fig. 4), shared by their encoders and decoders.

Inside one `tf.while_loop` over latent positions in raster order: gather the
causal neighbours of the position from the buffer of decoded latents, run the
model's per-position step (context + hyper features → distribution parameters
of its C channels), and code the C symbols on one range coder stream. The
encoder runs exactly this loop too, so both sides compute identical parameters.
The buffer is a TensorArray: writing a position and reading its neighbours cost
O(1) and O(neighbours), so time grows linearly with the latent area.
"""

import tensorflow as tf


def neighbour_slots(height, width, offsets):
  """[h·w, n] int32: for each position (raster order), the buffer slot of each
  causal neighbour (dy, dx); slot 0 holds zeros (outside the latent)."""
  rows = tf.range(height)[:, None]
  cols = tf.range(width)[None, :]
  slots = []
  for dy, dx in offsets:
    i, j = rows + dy, cols + dx
    inside = (i >= 0) & (i < height) & (j >= 0) & (j < width)
    slots.append(tf.where(inside, 1 + i * width + j, 0))
  return tf.reshape(tf.stack(slots, -1), [height * width, len(offsets)])


def raster_scan(step, coder, handle, hyper, offsets, channels, symbols=None):
  """Encodes `symbols` [h, w, C] (int32) if given, else decodes them.

  step(context [n·C] float, hyper_p [P]) → distribution parameters of the C
  channels at p, as `coder` takes them; hyper: [h, w, P] per-position features;
  offsets: the causal neighbours (dy, dx) of the context model.
  Returns (handle, symbols [h, w, C] int32).
  """
  height, width = tf.shape(hyper)[0], tf.shape(hyper)[1]
  count = height * width
  slots = neighbour_slots(height, width, offsets)
  hyper = tf.reshape(hyper, [count, hyper.shape[-1]])
  if symbols is not None:
    symbols = tf.reshape(symbols, [count, channels])
  buffer = tf.TensorArray(tf.float32, size=count + 1, element_shape=[channels],
                          clear_after_read=False).write(0, tf.zeros([channels]))

  def body(p, handle, buffer):
    context = tf.reshape(buffer.gather(slots[p]), [-1])
    params = step(context, hyper[p])
    if symbols is None:
      handle, value = coder.decode(handle, *params)
    else:
      value = symbols[p]
      handle = coder.encode(handle, value, *params)
    return p + 1, handle, buffer.write(p + 1, tf.cast(value, tf.float32))

  _, handle, buffer = tf.while_loop(
      lambda p, *_: p < count, body, (tf.constant(0), handle, buffer),
      parallel_iterations=1)
  decoded = tf.cast(buffer.stack()[1:], tf.int32)
  return handle, tf.reshape(decoded, [height, width, channels])
