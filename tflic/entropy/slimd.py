"""SLIMD: image-dependent local entropy models (Minnen, Toderici, Singh,
Hwang, Covell 2018, ICIP, §2.1 and §2.3), coded exactly in the graph.

The code tensor [h, w, C] is cut into a fixed grid of T × T tiles (edge
tiles smaller). Each (tile, channel) is coded with one multinomial model:
an entry of a learned dictionary (indices 0 … K − 1, K ≤ 255; the fitting,
eq. 2, is `slimd_dictionary`), or index 255, the channel's image-dependent
distribution (§2.3), sent in the stream as an 8-bit histogram.

Alphabet: the symbols −R … R (R = `radius`) and an escape bin for every
other value (coded after the bins, `escape.py`).

Encoder (`choose`, eq. 1): per (tile, channel) the entry of least code
length Σ_b n_b · L_k(b), where L_k(b) are the code lengths of the coder's
own quantized rows in units of 2^−`LENGTH_BITS` bit (integers; the escape bin
counts its symbol only, not the Elias-gamma bits after it), summed exactly
(ties: the lower index). §2.3, per channel: the histograms of the tiles whose
best code length exceeds their own-histogram code length (n · H) by more than
0.5 % are averaged, quantized to 8 bits (the largest bin 255); tiles whose
code length plus index cost is lower under it than under their entry benefit;
it is sent when their saving exceeds its cost (8 bits per bin, and the flag).

Streams: the side information and the code tensor, each element under
its tile's row. The side information, in this order (the paper DEFLATEs the
indices and sends the distributions as spans; the coding here is ours):
- per channel a flag: distribution sent or not (probability 1/16);
- per sent distribution its span, the first and the last non-zero bin
  (uniform over the B bins), then the 8-bit values from the first to the
  last (the two ends, never zero, as value − 1 of 255): 2·log2(B) + ~8 bits
  per bin of the span, a few bits for a one-hot histogram (§2.3 decides
  with this cost);
- the tile indices with spatial context: tiles in raster order, each
  (tile, channel) but the first tile's a flag "the same index as the
  predicting tile" (the tile to the left, else above) under an adaptive
  probability (integer counts of the flags of earlier tiles, all channels,
  from a prior learned with the dictionary), then the indices of the first
  tile and of every flagged change, under a per-channel prior of index
  frequencies (learned with the dictionary).
The decoder builds the rows of the sent histograms with integer arithmetic
only (`integer_cdf`), so every machine decodes the same symbols; a stream
whose index is neither a dictionary entry nor a sent distribution, or whose
span ends before it starts, raises `BitstreamError`.
"""

import numpy as np
import tensorflow as tf
import tensorflow_compression as tfc

from tflic import bitstream
from tflic.entropy import bands
from tflic.entropy import bisection
from tflic.entropy import escape

TILE = 16  # T, the paper's
RADIUS = 15  # R: symbols −15 … 15 and the escape, 32 bins
CUSTOM = 255  # the index of the image-dependent distribution
MAX_ENTRIES = 255
PRECISION = 16
LENGTH_BITS = 10  # code lengths in units of 2^−10 bit
POOR = 1.005  # §2.3: a tile 0.5 % above its own histogram's code length
SEND_PROBABILITY = 1 / 16  # prior of a channel's custom-distribution flag
SAME_LEVELS = 256  # binary rows of the "same index" flag
SAME_WEIGHT = 16  # pseudo-observations of the flag's learned prior


def bins(symbols, radius):
  """The histogram bin of each symbol: s + R for |s| ≤ R, else 2R + 1."""
  return tf.where(tf.abs(symbols) <= radius, symbols + radius, 2 * radius + 1)


def tile_ids(height, width, tile):
  """[h, w] int32: the raster index of each position's tile."""
  columns = (width + tile - 1) // tile
  return (tf.range(height)[:, None] // tile * columns
          + tf.range(width)[None, :] // tile)


def tile_histograms(symbols, tile, radius):
  """Symbol counts of every (tile, channel): symbols [h, w, C] int32 →
  [tiles, C, 2R + 2] int32, tiles in raster order."""
  shape = tf.shape(symbols)
  num_bins = 2 * radius + 2
  tiles = (-(-shape[0] // tile)) * (-(-shape[1] // tile))
  key = ((tile_ids(shape[0], shape[1], tile)[:, :, None] * shape[2]
          + tf.range(shape[2])) * num_bins + bins(symbols, radius))
  counts = tf.math.bincount(tf.reshape(key, [-1]),
                            minlength=tiles * shape[2] * num_bins,
                            dtype=tf.int32)
  return tf.reshape(counts, [tiles, shape[2], num_bins])


def integer_cdf(weights, precision=PRECISION):
  """Range-coder CDFs [n, B + 1] (int32) of non-negative integer weights
  [n, B] (each row with a positive sum), in integer arithmetic only: every
  bin gets 1 + ⌊w_b (2^precision − B) / Σw⌋ counts, the rest goes to the
  first largest bin."""
  weights = tf.cast(weights, tf.int64)
  num_bins = tf.shape(weights, out_type=tf.int64)[1]
  total = tf.reduce_sum(weights, 1, keepdims=True)
  counts = 1 + weights * ((1 << precision) - num_bins) // total
  # The first largest bin, by a unique integer key (no tie for argmax).
  key = weights * num_bins + (num_bins - 1 - tf.range(num_bins))
  largest = tf.one_hot(tf.argmax(key, 1), tf.shape(weights)[1],
                       dtype=tf.int64)
  counts += largest * ((1 << precision) - tf.reduce_sum(counts, 1,
                                                        keepdims=True))
  return tf.cast(tf.pad(tf.cumsum(counts, 1), [[0, 0], [1, 0]]), tf.int32)


def code_lengths(cdf, precision=PRECISION):
  """−log2 of each bin's probability under CDFs [n, B + 1], in units of
  2^−LENGTH_BITS bit (float64 holding integers)."""
  counts = tf.cast(cdf[:, 1:] - cdf[:, :-1], tf.float64)
  return tf.round((precision - tf.math.log(counts) / np.log(2.))
                  * (1 << LENGTH_BITS))


# The side table's rows (`Slimd.side_table`).
_FLAG, _END, _END_VALUE, _VALUE, _PRIOR = range(5)


def span(histograms):
  """(first, last non-zero bin [C] int32, whether each bin [C, B] is in the
  span, whether it is one of its two ends) of histograms [C, B]."""
  nonzero = tf.cast(histograms > 0, tf.int32)
  num_bins = tf.shape(histograms)[1]
  first = tf.argmax(nonzero, 1, output_type=tf.int32)
  last = num_bins - 1 - tf.argmax(nonzero[:, ::-1], 1, output_type=tf.int32)
  bins = tf.range(num_bins)[None]
  inside = (bins >= first[:, None]) & (bins <= last[:, None])
  return first, last, inside, (bins == first[:, None]) | (bins == last[:, None])


def predictors(count, columns):
  """The predicting tile of tiles 1 … count − 1 (raster order, `columns`
  per row): the one to the left, else the one above."""
  t = tf.range(1, count)
  return tf.where(t % columns > 0, t - 1, t - columns)


class Slimd(tf.Module):
  """The coder of a code tensor with a SLIMD dictionary.

  dictionary: [K, 2R + 2] entries (rows of probabilities, the last bin the
  escape), K ≤ 255; index_counts: [C, 256] frequencies of the coded
  indices per channel (the prior of the side information; every entry gets
  at least one count, the unused indices K … 254 none); same_counts: how
  often a tile's index equals its predicting tile's, of how many (the
  flags' prior); tile: T; radius: R."""

  def __init__(self, dictionary, index_counts, tile=TILE, radius=RADIUS,
               same_counts=(1, 2), name="slimd"):
    super().__init__(name=name)
    dictionary = np.asarray(dictionary, np.float64)
    self.entries, self.num_bins = dictionary.shape
    self.tile, self.radius = int(tile), int(radius)
    if not 1 <= self.entries <= MAX_ENTRIES:
      raise ValueError(f"a SLIMD dictionary has 1 … {MAX_ENTRIES} entries, "
                       f"not {self.entries}")
    if self.num_bins != 2 * self.radius + 2:
      raise ValueError(f"dictionary entries have {self.num_bins} bins; "
                       f"radius {radius} needs {2 * self.radius + 2}")
    self.channels = len(index_counts)
    weights = np.round(dictionary / dictionary.sum(1, keepdims=True)
                       * (1 << 24)).astype(np.int64)
    cdf = integer_cdf(weights)
    self.code_rows = escape.EscapeTable(list(cdf.numpy()),
                                        *escape.FACTORIZED_RANGE,
                                        name="code_rows")
    self.dictionary_lengths = tf.Variable(code_lengths(cdf), trainable=False,
                                          name="dictionary_lengths")
    counts = np.zeros([self.channels, 256], np.int64)
    counts[:, :self.entries] = 1
    counts[:, CUSTOM] = 1
    counts += np.asarray(index_counts, np.int64) * (counts > 0)
    index_cdf = integer_cdf(counts)
    self.index_lengths = tf.Variable(code_lengths(index_cdf), trainable=False,
                                     name="index_lengths")
    one = 1 << PRECISION
    flag = [0, one - one // 16, one]
    same_rows, thresholds = bisection.binary_table(SAME_LEVELS, PRECISION)
    # Rows: the flag, a span end, an end value − 1, an inner value, the
    # channels' index priors, the "same index" flags.
    side = [flag, escape.uniform_row(self.num_bins), escape.uniform_row(255),
            escape.uniform_row(256)] + list(index_cdf.numpy()) + [
                r[1:] for r in same_rows]
    self.side_table = tf.Variable(np.concatenate(
        [np.concatenate([[PRECISION], r]) for r in side]).astype(np.int32),
                                  trainable=False, name="side_table")
    self.same_thresholds = tf.Variable(thresholds[None], trainable=False,
                                       name="same_thresholds")
    same, total = same_counts
    self.same_prior = (int(np.clip(round(SAME_WEIGHT * same / max(total, 1)),
                                   1, SAME_WEIGHT - 1)), SAME_WEIGHT)

  # -- the encoder's choice (eq. 1 and §2.3) -----------------------------------
  def best_entries(self, counts):
    """Eq. 1: counts [tiles, C, B] → (the entry of least code length [tiles,
    C] int32, the lowest index among equals; that code length, in units of
    2^−LENGTH_BITS bit). The sums are of integers below 2^53: exact."""
    cost = tf.einsum("tcb,kb->tck", tf.cast(counts, tf.float64),
                     self.dictionary_lengths)
    entries = tf.range(self.entries, dtype=tf.float64)
    best = tf.argmin(cost * MAX_ENTRIES + entries, -1, output_type=tf.int32)
    return best, tf.reduce_min(cost, -1)

  def choose(self, counts):
    """counts [tiles, C, B] → (indices [tiles, C] int32, sent [C] bool,
    histograms [C, B] int32: the 8-bit custom distributions, zero where
    not sent)."""
    best, best_cost = self.best_entries(counts)
    n = tf.cast(counts, tf.float64)
    # §2.3: the tiles that no entry fits well, averaged per channel.
    size = tf.reduce_sum(n, -1, keepdims=True)
    own = tf.reduce_sum(tf.math.multiply_no_nan(
        tf.math.log(size / n) / np.log(2.), n), -1) * (1 << LENGTH_BITS)
    poor = tf.cast(best_cost > POOR * own, tf.float64)[..., None]
    average = tf.reduce_sum(poor * tf.math.divide_no_nan(n, size), 0)  # [C, B]
    histograms = tf.cast(tf.round(255. * tf.math.divide_no_nan(
        average, tf.reduce_max(average, -1, keepdims=True))), tf.int32)
    usable = tf.reduce_any(histograms > 0, -1)
    lengths = code_lengths(integer_cdf(tf.where(
        usable[:, None], histograms, 1)))  # [C, B]
    custom_cost = (tf.einsum("tcb,cb->tc", n, lengths)
                   + self.index_lengths[:, CUSTOM])
    channel = tf.range(tf.shape(counts)[1])[None, :]
    best_cost += tf.gather(tf.reshape(self.index_lengths, [-1]),
                           channel * 256 + best)
    benefit = tf.logical_and(usable, custom_cost < best_cost)
    saving = tf.reduce_sum(tf.where(benefit, best_cost - custom_cost, 0.), 0)
    _, _, inside, ends = span(histograms)
    values = tf.reduce_sum(tf.where(inside, tf.where(ends, np.log2(255.), 8.),
                                    0.), 1)
    send_cost = (values + 2 * np.log2(self.num_bins) - np.log2(
        SEND_PROBABILITY) + np.log2(1 - SEND_PROBABILITY)) * (1 << LENGTH_BITS)
    sent = saving > send_cost
    indices = tf.where(tf.logical_and(benefit, sent), CUSTOM, best)
    return indices, sent, tf.where(sent[:, None], histograms, 0)

  # -- coding -------------------------------------------------------------------
  def _lookup(self, histograms, sent):
    """The code tensor's lookup (`EscapeTable.lookup`): the dictionary's
    rows, then one row per channel (its sent distribution; uniform where
    none was sent)."""
    return self.code_rows.lookup(integer_cdf(tf.where(sent[:, None],
                                                      histograms, 1)))

  def _element_rows(self, indices, shape):
    """Each element's row of `_table`: its tile's index, or K + c for 255."""
    rows = tf.where(indices == CUSTOM,
                    self.entries + tf.range(shape[2])[None, :], indices)
    return tf.gather(rows, tile_ids(shape[0], shape[1], self.tile))

  def _same_rows(self, same, total):
    """The side table's row of the "same index" flag for integer counts of
    flags (same of total, int64 [n])."""
    ratio = same * (1 << bisection.RATIO_BITS) // total
    return _PRIOR + self.channels + tf.searchsorted(
        self.same_thresholds, ratio[None], side="right", out_type=tf.int32)[0]

  def _encode_indices(self, handle, indices, columns):
    """Tile indices [tiles, C] (raster order, `columns` tiles per row):
    the "same as the predicting tile" flags of tiles 1 …, then the indices
    of tile 0 and of every change (module docstring)."""
    count, channels = tf.shape(indices)[0], self.channels
    equal = indices[1:] == tf.gather(indices, predictors(count, columns))
    same_before, total = self.same_prior
    same = same_before + tf.cumsum(tf.reduce_sum(tf.cast(equal, tf.int64), 1),
                                   exclusive=True)
    total += channels * tf.range(count - 1, dtype=tf.int64)
    rows = tf.broadcast_to(self._same_rows(same, total)[:, None],
                           tf.shape(equal))
    handle = tfc.entropy_encode_index(handle, rows, tf.cast(~equal, tf.int32))
    new = tf.concat([tf.ones([1, channels], tf.bool), ~equal], 0)
    channel = tf.broadcast_to(tf.range(channels), tf.shape(new))
    return tfc.entropy_encode_index(handle,
                                    _PRIOR + tf.boolean_mask(channel, new),
                                    tf.boolean_mask(indices, new))

  def _decode_indices(self, handle, count, columns):
    """The indices of `_encode_indices`: → (handle, indices [tiles, C])."""
    channels = self.channels
    same_before, total = self.same_prior

    def flags(t, handle, same, changed):
      row = self._same_rows(same[None], (total + channels * (
          tf.cast(t, tf.int64) - 1))[None])[0]
      handle, flag = tfc.entropy_decode_index(
          handle, tf.fill([channels], row), [channels], tf.int32)
      return (t + 1, handle, same + tf.reduce_sum(tf.cast(flag == 0,
                                                          tf.int64)),
              changed.write(t - 1, flag > 0))
    _, handle, _, changed = tf.while_loop(
        lambda t, *_: t < count, flags,
        (tf.constant(1), handle, tf.constant(same_before, tf.int64),
         tf.TensorArray(tf.bool, size=count - 1, element_shape=[channels])),
        parallel_iterations=1)
    new = tf.concat([tf.ones([1, channels], tf.bool), changed.stack()], 0)
    where = tf.where(new)
    handle, values = tfc.entropy_decode_index(
        handle, _PRIOR + tf.cast(where[:, 1], tf.int32), tf.shape(where)[:1],
        tf.int32)
    fresh = tf.scatter_nd(where, values, [count, channels])
    previous = tf.concat([[0], predictors(count, columns)], 0)

    def rebuild(t, out):
      kept = out.read(previous[t])
      return t + 1, out.write(t, tf.where(new[t], fresh[t], kept))
    out = tf.TensorArray(tf.int32, size=count, element_shape=[channels],
                         clear_after_read=False).write(0, fresh[0])
    _, out = tf.while_loop(lambda t, _: t < count, rebuild,
                           (tf.constant(1), out), parallel_iterations=1)
    return handle, out.stack()

  def encode(self, symbols):
    """symbols [h, w, C] int32 → (side information, code) scalar strings."""
    indices, sent, histograms = self.choose(
        tile_histograms(symbols, self.tile, self.radius))
    channels = tf.shape(symbols)[2]
    handle = tfc.create_range_encoder([], self.side_table)
    handle = tfc.entropy_encode_index(
        handle, tf.fill([channels], _FLAG), tf.cast(sent, tf.int32))
    first, last, inside, ends = span(histograms)
    handle = tfc.entropy_encode_index(
        handle, tf.fill([2 * tf.reduce_sum(tf.cast(sent, tf.int32))], _END),
        tf.reshape(tf.boolean_mask(tf.stack([first, last], 1), sent), [-1]))
    inside &= sent[:, None]
    ends, values = tf.boolean_mask(ends, inside), tf.boolean_mask(histograms,
                                                                  inside)
    handle = tfc.entropy_encode_index(handle,
                                      tf.where(ends, _END_VALUE, _VALUE),
                                      tf.where(ends, values - 1, values))
    handle = self._encode_indices(
        handle, indices, -(-tf.shape(symbols)[1] // self.tile))
    side = tfc.entropy_encode_finalize(handle)
    lookup = self._lookup(histograms, sent)
    rows = self._element_rows(indices, tf.shape(symbols))
    code = lambda handle, start, stop: self.code_rows.encode(
        handle, rows[start:stop], symbols[start:stop], -self.radius, lookup)
    handle = bands.each(tfc.create_range_encoder([], lookup[0]),
                        tf.shape(symbols)[0], tf.shape(symbols)[1], code)
    return side, tfc.entropy_encode_finalize(handle)

  def decode(self, side, code, height, width):
    """The strings of `encode` and the code tensor's size → symbols
    [h, w, C] int32; a stream that names an index it cannot have raises
    (`bitstream.MARKER`)."""
    channels = self.channels
    tiles = (-(-height // self.tile)) * (-(-width // self.tile))
    handle = tfc.create_range_decoder(side, self.side_table)
    handle, sent = tfc.entropy_decode_index(
        handle, tf.fill([channels], _FLAG), [channels], tf.int32)
    sent = sent > 0
    count = 2 * tf.reduce_sum(tf.cast(sent, tf.int32))
    handle, ends = tfc.entropy_decode_index(handle, tf.fill([count], _END),
                                            [count], tf.int32)
    first, last = tf.unstack(tf.reshape(ends, [-1, 2]), axis=1)
    bins = tf.ragged.range(first, last + 1)
    channel = tf.cast(bins.value_rowids(), tf.int32)
    bins = bins.flat_values
    end = (bins == tf.gather(first, channel)) | (bins == tf.gather(last,
                                                                    channel))
    handle, values = tfc.entropy_decode_index(
        handle, tf.where(end, _END_VALUE, _VALUE), tf.shape(bins), tf.int32)
    histograms = tf.scatter_nd(
        tf.stack([tf.gather(tf.where(sent)[:, 0], channel),
                  tf.cast(bins, tf.int64)], 1),
        tf.where(end, values + 1, values), [channels, self.num_bins])
    _, indices = self._decode_indices(handle, tiles,
                                      -(-width // self.tile))
    valid = tf.logical_or(indices < self.entries, tf.logical_and(
        indices == CUSTOM, sent[None, :]))
    checks = [
        bitstream.require(tf.reduce_all(valid), "a SLIMD tile index names "
                          "no dictionary entry or sent distribution"),
        bitstream.require(tf.reduce_all(first <= last),
                          "a SLIMD distribution's span ends before it "
                          "starts")]
    with tf.control_dependencies(checks):
      lookup = self._lookup(histograms, sent)
      rows = self._element_rows(indices, tf.stack([height, width, channels]))
      band = lambda handle, start, stop: self.code_rows.decode(
          handle, rows[start:stop], -self.radius, lookup)
      values = bands.collect(tfc.create_range_decoder(code, lookup[0]),
                             height, width, band)[1]
    return tf.reshape(values, [height, width, channels])

  def get_config(self):
    return dict(tile=self.tile, radius=self.radius, entries=self.entries)
