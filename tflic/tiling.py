"""Full-resolution transforms over tiles, so that coding an image of any size
fits a memory budget.

g_a and g_s are convolutional: an output position depends only on the inputs
within the transform's receptive field. `apply` cuts the latent grid into
tiles of `tile` × `tile` positions, runs the transform on each tile together
with a border of `halo` positions on every side (clipped at the image's
edges, where the untiled transform sees its own padding), keeps the tile's
share of the output and stitches the shares together. With a halo that covers
the receptive field the result equals the untiled transform up to float
rounding (tests/test_tiling.py). Tile origins are multiples of the latent
stride, so every strided layer keeps the alignment it has on the whole image.

Tiles run one after another (a `tf.while_loop` with one iteration in flight),
so the transforms' peak memory is that of one tile, whatever the image size.
"""

import math

import tensorflow as tf

STRIDE = 16  # pixels per latent position, for every model
BYTES_PER_FLOAT = 4
# Peak bytes of a tile over 4 bytes × the largest input + output of one
# layer: what a layer holds inside (GDN's x² and norm, a transposed
# convolution's buffers, a residual block's branches). Measured on the
# paper-size hyperprior (bin/benchmark --megapixels, untiled at 1 MP):
# g_a 2.3, g_s 5.9.
ANALYSIS_OVERHEAD = 3.
SYNTHESIS_OVERHEAD = 6.
MIN_TILE = 4
# What a coding process holds besides the tiles: the TensorFlow runtime, the
# SavedModel and its weights (0.71 GB measured for a tiny model here, 1.14 GB
# on another machine: bin/benchmark --megapixels prints it), and the
# image's own uint8 copies (the caller's, the input tensor, the stitched
# output and its crop: 12 bytes per pixel, 0.29 GB at 24 MP). Above 24 MP
# those copies exceed the reserve by 12 bytes per pixel.
RESERVE = 1 << 30  # 1 GB


def apply(transform, x, tile, halo, scale_in, scale_out, prepare=None,
          finish=None, dtype=tf.float32):
  """transform(x) over tiles of the latent grid.

  x: [1, H, W, C] with H, W multiples of `scale_in` (pixels or latents per
  grid position of the input; the output has `scale_out` per position).
  tile, halo: grid positions (tile None: one call on the whole input).
  prepare: applied to each input crop first (e.g. uint8 → float), finish to
  each output share (e.g. float → uint8; `dtype` is what it returns), so the
  whole image exists only in the compact form."""
  prepare = prepare or (lambda t: t)
  finish = finish or (lambda t: t)
  if tile is None:
    return finish(transform(prepare(x)))
  shape = tf.shape(x)
  channels = []  # the output's (static) depth, seen when the loop is traced
  rows, cols = shape[1] // scale_in, shape[2] // scale_in
  count = lambda n: (n + tile - 1) // tile

  def share(i, j):
    r0, c0 = i * tile, j * tile
    r1, c1 = tf.minimum(r0 + tile, rows), tf.minimum(c0 + tile, cols)
    lo_r, lo_c = tf.maximum(r0 - halo, 0), tf.maximum(c0 - halo, 0)
    hi_r, hi_c = tf.minimum(r1 + halo, rows), tf.minimum(c1 + halo, cols)
    crop = x[:, lo_r * scale_in:hi_r * scale_in, lo_c * scale_in:hi_c * scale_in]
    out = transform(prepare(crop))
    channels.append(out.shape[-1])
    return finish(out[0, (r0 - lo_r) * scale_out:(r1 - lo_r) * scale_out,
                      (c0 - lo_c) * scale_out:(c1 - lo_c) * scale_out])

  def strip(i):
    """One row of tiles, concatenated along the width."""
    def body(j, parts):  # parts: the shares transposed, [w, h, C], stacked on w
      return j + 1, parts.write(j, tf.transpose(share(i, j), [1, 0, 2]))
    parts = tf.TensorArray(dtype, size=count(cols), infer_shape=False)
    _, parts = tf.while_loop(lambda j, _: j < count(cols), body,
                             (tf.constant(0), parts), parallel_iterations=1)
    return tf.transpose(parts.concat(), [1, 0, 2])

  strips = tf.TensorArray(dtype, size=count(rows), infer_shape=False)
  _, strips = tf.while_loop(
      lambda i, _: i < count(rows),
      lambda i, s: (i + 1, s.write(i, strip(i))),
      (tf.constant(0), strips), parallel_iterations=1)
  result = strips.concat()[None]
  result.set_shape([1, None, None, channels[0]])
  return result


def bytes_per_position(transform, channels, scale_in, overhead, probe=4):
  """Estimated peak bytes of `transform` (a Sequential) per latent position
  of a tile: `overhead` × the largest input + output of one layer, found by
  running the layers on a probe of `probe` × `probe` positions."""
  h = tf.zeros([1, probe * scale_in, probe * scale_in, channels])
  largest = 0
  for layer in transform.layers:
    out = layer(h)
    largest = max(largest, int(tf.size(h)) + int(tf.size(out)))
    h = out
  return overhead * BYTES_PER_FLOAT * largest / probe ** 2


def share(budget):
  """The bytes of a memory budget that a tile may use: what the RESERVE
  leaves (at least a quarter)."""
  return max(budget - RESERVE, budget / 4)


def tile_for_budget(budget, per_position, halo):
  """The largest tile side (latent positions) whose tile plus halo needs at
  most `budget` bytes (at least MIN_TILE)."""
  side = int(math.sqrt(budget / per_position)) - 2 * halo
  return max(side, MIN_TILE)
