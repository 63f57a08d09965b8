"""Range coding with a bounded escape (bitstream format 3).

tensorflow-compression's range coder codes a value beyond a row's bins with
an Elias-gamma code when the row's precision is negative; its decoder reads
the gamma code's unary prefix without a bound, so a forged stream that
reaches an escape with an exhausted input (which decodes as zeros) loops
forever inside one op (a two-byte stream does it; no signal stops it).
tflic never uses that mode. Every row has a positive precision and its last
bin is the escape; a coding call codes the bins of its elements, then the
escaped elements' symbols, each under one uniform row over [low, high]. A
decoder therefore takes a bounded number of steps whatever the stream, and
an escaped symbol is always within [low, high].

Streams without escapes are the bytes tensorflow-compression's overflow
coding writes; streams with escapes differ (format 2 used the gamma code).
"""

import numpy as np
import tensorflow as tf
import tensorflow_compression as tfc

PRECISION = 16
# The integers the factorized coders code (a factorized prior, SLIMD): the
# encoder clips to them, so a forged stream cannot decode beyond them.
FACTORIZED_RANGE = (-(1 << 15), (1 << 15) - 1)


def uniform_row(count, precision=PRECISION):
  """The CDF row (without its precision) of `count` ≤ 2^precision (nearly)
  equally likely symbols."""
  return (np.arange(count + 1, dtype=np.int64) << precision) // count


class EscapeTable(tf.Module):
  """A range-coder lookup of rows (CDFs [0, …, 2^PRECISION], the last bin of
  each the escape) and the uniform row of escaped symbols in [low, high].

  `encode`/`decode` take, per element, its row and its `base` (symbol = bin
  + base): a symbol whose bin is outside the row's regular bins is escaped.
  The rows are fixed here (`rows`), or appended per call (`extra_rows`,
  e.g. distributions sent in the stream)."""

  def __init__(self, rows, low, high, name="escape_table"):
    super().__init__(name=name)
    self.low, self.high = int(low), int(high)
    if not 1 <= self.high - self.low + 1 <= 1 << PRECISION:
      raise ValueError(f"escaped symbols: [{low}, {high}] needs more than "
                       f"{PRECISION} bits")
    self.num_rows = len(rows)
    self.table = tf.Variable(_lookup(rows), trainable=False, name="table")
    self.sizes = tf.Variable(np.array([len(r) - 2 for r in rows], np.int32),
                             trainable=False, name="sizes")
    self.escape = tf.Variable(_lookup([uniform_row(self.high - self.low + 1)]),
                              trainable=False, name="escape")

  def lookup(self, extra_rows=None):
    """(the flat lookup for a range coder handle, regular bins per row, the
    escape row's index): this table's rows, `extra_rows` ([n, B + 1] int32
    CDFs of B bins each, the last the escape), then the uniform row."""
    parts, sizes = [self.table], [self.sizes]
    if extra_rows is not None:
      parts.append(tf.reshape(tf.pad(extra_rows, [[0, 0], [1, 0]],
                                     constant_values=PRECISION), [-1]))
      sizes.append(tf.fill(tf.shape(extra_rows)[:1],
                           tf.shape(extra_rows)[1] - 2))
    sizes = tf.concat(sizes, 0)
    return (tf.concat(parts + [self.escape], 0), sizes,
            tf.shape(sizes)[0])

  def encode(self, handle, rows, symbols, base, lookup=None):
    """Codes `symbols` (int32 in [low, high]) of any shape as bins
    `symbols − base` of their `rows`, then the escaped ones. `lookup`: of
    `lookup(extra_rows)`, if the handle was made with one."""
    _, sizes, escape = lookup or self.lookup()
    size = tf.gather(sizes, rows)
    bins = symbols - base
    escaped = (bins < 0) | (bins >= size)
    handle = tfc.entropy_encode_index(handle, rows, tf.where(escaped, size,
                                                             bins))
    extra = tf.boolean_mask(symbols - self.low, escaped)
    return tfc.entropy_encode_index(handle, tf.fill(tf.shape(extra), escape),
                                    extra)

  def encode_groups(self, handle, rows, symbols, base):
    """`encode` of groups [P, C] (e.g. the channels of P positions) in the
    order in which P calls of `decode` read them, one group each: the bins
    of a group, then its escaped symbols."""
    _, sizes, escape = self.lookup()
    size = tf.gather(sizes, rows)
    bins = symbols - base
    escaped = (bins < 0) | (bins >= size)
    groups, channels = tf.shape(rows)[0], tf.shape(rows)[1]
    count = tf.reduce_sum(tf.cast(escaped, tf.int32), 1)
    start = channels * tf.range(groups) + tf.cumsum(count, exclusive=True)
    bin_at = start[:, None] + tf.range(channels)[None]
    extra_at = start[:, None] + channels + tf.cumsum(
        tf.cast(escaped, tf.int32), 1, exclusive=True)
    at = tf.concat([tf.reshape(bin_at, [-1]),
                    tf.boolean_mask(extra_at, escaped)], 0)[:, None]
    total = [groups * channels + tf.reduce_sum(count)]
    extra = tf.boolean_mask(symbols - self.low, escaped)
    sequence = lambda first, second: tf.scatter_nd(
        at, tf.concat([tf.reshape(first, [-1]), second], 0), total)
    return tfc.entropy_encode_index(
        handle, sequence(rows, tf.fill(tf.shape(extra), escape)),
        sequence(tf.where(escaped, size, bins), extra))

  def decode(self, handle, rows, base, lookup=None):
    """→ (handle, symbols of the shape of `rows`): bin + base, or the
    escaped symbol (then within [low, high]). A bin's symbol may lie
    outside [low, high] in a forged stream: the caller checks what it
    uses."""
    _, sizes, escape = lookup or self.lookup()
    handle, bins = tfc.entropy_decode_index(handle, rows, tf.shape(rows),
                                            tf.int32)
    where = tf.where(bins == tf.gather(sizes, rows))
    count = tf.shape(where)[:1]
    handle, extra = tfc.entropy_decode_index(handle, tf.fill(count, escape),
                                             count, tf.int32)
    return handle, tf.tensor_scatter_nd_update(bins + base, where,
                                               extra + self.low)


def _lookup(rows):
  """Rows (CDFs) → a flat lookup, each row preceded by its precision."""
  return np.concatenate([np.concatenate([[PRECISION], np.asarray(r)])
                         for r in rows]).astype(np.int32)


def rows_of_lookup(lookup):
  """The CDF rows of a flat range-coder lookup (tensorflow-compression's
  layout: per row its precision, 0, …, 2^|precision|, padding by repeats of
  the last value), without their precisions or padding."""
  lookup, rows, i = np.asarray(lookup), [], 0
  while i < len(lookup):
    last = 1 << abs(int(lookup[i]))
    j = i + 1
    while lookup[j] != last:
      j += 1
    rows.append(lookup[i + 1:j + 1].astype(np.int64))
    i = j + 1
    while i < len(lookup) and lookup[i] == last:
      i += 1
  return rows
