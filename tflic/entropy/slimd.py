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

Streams: the side information — per channel a flag (sent or not, fixed
probability 1/16, a choice: the paper does not say), the sent histograms
(8 bits per bin, uniform), the tile indices (tile raster order, channels
innermost; under a per-channel prior of index frequencies learned with the
dictionary, where the paper DEFLATEs them) — and the code tensor, each element
under its tile's row. The decoder builds the rows of the sent histograms with
integer arithmetic only (`integer_cdf`), so every machine decodes the same
symbols; a stream whose index is neither a dictionary entry nor a sent
distribution raises `BitstreamError`.
"""

import numpy as np
import tensorflow as tf
import tensorflow_compression as tfc

from tflic import bitstream
from tflic.entropy import escape
from tflic.entropy import factorized

TILE = 16  # T, the paper's
RADIUS = 15  # R: symbols −15 … 15 and the escape, 32 bins
CUSTOM = 255  # the index of the image-dependent distribution
MAX_ENTRIES = 255
PRECISION = 16
LENGTH_BITS = 10  # code lengths in units of 2^−10 bit
POOR = 1.005  # §2.3: a tile 0.5 % above its own histogram's code length
SEND_PROBABILITY = 1 / 16  # prior of a channel's custom-distribution flag
_FLAG_ROW = [PRECISION, 0, (1 << PRECISION) - (1 << PRECISION) // 16,
             1 << PRECISION]
_BYTE_ROW = [PRECISION] + list(range(0, (1 << PRECISION) + 1, 1 << 8))


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


def _rows(cdf, precision):
  """Lookup rows [precision, cdf …] (negative precision: escape coding)."""
  return tf.pad(cdf, [[0, 0], [1, 0]], constant_values=precision)


class Slimd(tf.Module):
  """The coder of a code tensor with a SLIMD dictionary.

  dictionary: [K, 2R + 2] entries (rows of probabilities, the last bin the
  escape), K ≤ 255; index_counts: [C, 256] frequencies of the indices per
  channel (the prior of the side information; every entry gets at least
  one count, the unused indices K … 254 none); tile: T; radius: R."""

  def __init__(self, dictionary, index_counts, tile=TILE, radius=RADIUS,
               name="slimd"):
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
    self.code_rows = escape.EscapeTable(list(cdf.numpy()), factorized.LOW,
                                        factorized.HIGH, name="code_rows")
    self.dictionary_lengths = tf.Variable(code_lengths(cdf), trainable=False,
                                          name="dictionary_lengths")
    counts = np.zeros([self.channels, 256], np.int64)
    counts[:, :self.entries] = 1
    counts[:, CUSTOM] = 1
    counts += np.asarray(index_counts, np.int64) * (counts > 0)
    index_cdf = integer_cdf(counts)
    self.index_lengths = tf.Variable(code_lengths(index_cdf), trainable=False,
                                     name="index_lengths")
    side = [np.array(_FLAG_ROW), np.array(_BYTE_ROW)]
    side += list(_rows(index_cdf, PRECISION).numpy())
    self.side_table = tf.Variable(np.concatenate(side).astype(np.int32),
                                  trainable=False, name="side_table")

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
    send_cost = (self.num_bins * 8 - np.log2(SEND_PROBABILITY)
                 + np.log2(1 - SEND_PROBABILITY)) * (1 << LENGTH_BITS)
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

  def encode(self, symbols):
    """symbols [h, w, C] int32 → (side information, code) scalar strings."""
    indices, sent, histograms = self.choose(
        tile_histograms(symbols, self.tile, self.radius))
    channels = tf.shape(symbols)[2]
    handle = tfc.create_range_encoder([], self.side_table)
    handle = tfc.entropy_encode_index(
        handle, tf.zeros([channels], tf.int32), tf.cast(sent, tf.int32))
    sent_histograms = tf.reshape(tf.boolean_mask(histograms, sent), [-1])
    handle = tfc.entropy_encode_index(
        handle, tf.ones_like(sent_histograms), sent_histograms)
    handle = tfc.entropy_encode_index(
        handle, 2 + tf.zeros_like(indices) + tf.range(channels), indices)
    side = tfc.entropy_encode_finalize(handle)
    lookup = self._lookup(histograms, sent)
    handle = self.code_rows.encode(
        tfc.create_range_encoder([], lookup[0]),
        self._element_rows(indices, tf.shape(symbols)), symbols,
        -self.radius, lookup)
    return side, tfc.entropy_encode_finalize(handle)

  def decode(self, side, code, height, width):
    """The strings of `encode` and the code tensor's size → symbols
    [h, w, C] int32; a stream that names an index it cannot have raises
    (`bitstream.MARKER`)."""
    channels = self.channels
    tiles = (-(-height // self.tile)) * (-(-width // self.tile))
    handle = tfc.create_range_decoder(side, self.side_table)
    handle, sent = tfc.entropy_decode_index(
        handle, tf.zeros([channels], tf.int32), [channels], tf.int32)
    sent = sent > 0
    count = tf.reduce_sum(tf.cast(sent, tf.int32)) * self.num_bins
    handle, values = tfc.entropy_decode_index(
        handle, tf.ones([count], tf.int32), [count], tf.int32)
    histograms = tf.scatter_nd(
        tf.where(sent), tf.reshape(values, [-1, self.num_bins]),
        [channels, self.num_bins])
    rows = 2 + tf.zeros([tiles, channels], tf.int32) + tf.range(channels)
    _, indices = tfc.entropy_decode_index(handle, rows, tf.shape(rows),
                                          tf.int32)
    valid = tf.logical_or(indices < self.entries, tf.logical_and(
        indices == CUSTOM, sent[None, :]))
    checks = [
        bitstream.require(tf.reduce_all(valid), "a SLIMD tile index names "
                          "no dictionary entry or sent distribution"),
        bitstream.require(tf.reduce_all(tf.logical_or(
            ~sent, tf.reduce_sum(histograms, 1) > 0)),
                          "an empty SLIMD distribution")]
    with tf.control_dependencies(checks):
      lookup = self._lookup(histograms, sent)
      rows = self._element_rows(indices, tf.stack([height, width, channels]))
      return self.code_rows.decode(tfc.create_range_decoder(code, lookup[0]),
                                   rows, -self.radius, lookup)[1]

  def get_config(self):
    return dict(tile=self.tile, radius=self.radius, entries=self.entries)
