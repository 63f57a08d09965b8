"""The global reference model of Qian et al. 2021, "Learning accurate entropy
model with global reference for image compression" (§3, Figs. 3–5).

For the current position p, the k×k patch of decoded latents around it,
masked to the positions before p in raster order (centre excluded), is
compared by cosine similarity with the equally masked patch of every earlier
position j; the best j* and its similarity S are the reference. Its
"relevant latents" (the k×k patch around j* with its centre, all decoded) are
transferred by a type-B masked convolution. The confidence U is the
likelihood of ŷ at j* under the context-only parameters, averaged over
channels.

The search is causal in training as in coding (only j < p): the authors'
public code lets training look at every other position, a mismatch with what
the decoder can do. In the coder the search is incremental (one
matrix-vector product against the kept normalized patches per position), and
`search_rows` can bound it to the latent rows above (linear cost in area).

The stages are combined as Gaussian experts: precisions add, in the log
domain with log-sum-exp, and means are precision-weighted; the reference
expert's precision is scaled by S·U, so an unreliable reference (S·U → 0)
leaves the context-only estimate unchanged.
"""

import tensorflow as tf

NONE = -2.  # the similarity of "no candidate"; every cosine is ≥ −1
EPSILON = 1e-9  # added to S·U before its log


def shifted(y, offsets):
  """y [B, H, W, C] → [B, H, W, n·C]: at each position, y at (dy, dx) from
  it for each offset in order (zeros outside), as the coder gathers them."""
  reach = max(max(abs(dy), abs(dx)) for dy, dx in offsets)
  padded = tf.pad(y, [[0, 0], [reach, reach], [reach, reach], [0, 0]])
  height, width = tf.shape(y)[1], tf.shape(y)[2]
  return tf.concat([
      padded[:, reach + dy:reach + dy + height, reach + dx:reach + dx + width]
      for dy, dx in offsets], -1)


def normalize(patch):
  """Unit vectors along the last axis (a zero patch stays zero)."""
  return tf.math.l2_normalize(patch, -1, epsilon=1e-12)


def search(patches, width, search_rows=0):
  """patches [B, N, D] (normalized, raster order, rows of `width`) →
  (j* [B, N] int32, S [B, N], valid [B, N] bool): for each p the most similar
  j < p (within the `search_rows` rows above, if > 0); S = 0 and valid =
  False where there is no candidate (p = 0)."""
  similarity = tf.matmul(patches, patches, transpose_b=True)  # [B, p, j]
  n = tf.shape(patches)[1]
  p, j = tf.range(n)[:, None], tf.range(n)[None, :]
  allowed = j < p
  if search_rows:
    allowed &= j >= (p // width - search_rows) * width
  similarity = tf.where(allowed, similarity, NONE)
  index = tf.argmax(similarity, -1, output_type=tf.int32)
  valid = tf.broadcast_to(tf.reduce_any(allowed, -1), tf.shape(index))
  s = tf.where(valid, tf.reduce_max(similarity, -1), 0.)
  return index, s, valid


def search_step(candidates, patch, start):
  """The coder's search at one position: candidates [n, D] are the patches of
  positions start … p − 1 → (j*, S, valid), as `search` computes them."""
  similarity = tf.concat([[NONE], tf.linalg.matvec(candidates, patch)], 0)
  best = tf.argmax(similarity, output_type=tf.int32)
  valid = best > 0
  return start + best - 1, tf.where(valid, similarity[best], 0.), valid


def combine(mean_a, log_precision_a, mean_b, log_precision_b):
  """The product of two Gaussian experts: precisions add (log-sum-exp of the
  log-precisions), the mean is precision-weighted."""
  log_precision = tf.reduce_logsumexp(
      tf.stack([log_precision_a, log_precision_b]), 0)
  mean = (tf.exp(log_precision_a - log_precision) * mean_a +
          tf.exp(log_precision_b - log_precision) * mean_b)
  return mean, log_precision


def reliability(s, u):
  """log(S⁺·U): added to the reference expert's log-precision."""
  return tf.math.log(tf.maximum(s, 0.) * u + EPSILON)
