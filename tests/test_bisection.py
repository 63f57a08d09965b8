"""The bisection coder: exact round trips under Gaussian mixtures with integer
parameters, edges and far tails included, at a rate within 0.1 % of −log2 p;
symbols outside the support are an error; the integer Gaussian table coder
likewise."""

import math

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_compression as tfc

from tflic.entropy import integer_gaussian as ig
from tflic.entropy import mixture
from tflic.entropy.bisection import BisectionCoder


def random_mixture(n, k, seed):
  """Integer (logits, means, scale indices) [n, k]."""
  rng = np.random.default_rng(seed)
  logits = np.round(rng.normal(size=(n, k)) * 64)
  means = np.round(rng.normal(size=(n, k)) * 8 * 64)
  scales = rng.integers(0, ig.log_scale_index(math.log(60.)), size=(n, k))
  return [tf.constant(a, tf.int32) for a in (logits, means, scales)]


def sample(coder, params, seed):
  rng = np.random.default_rng(seed)
  w, m, s = (a.numpy() for a in coder.float_parameters(*params))
  component = np.array([rng.choice(len(p), p=p / p.sum()) for p in w])
  rows = np.arange(len(w))
  values = rng.normal(m[rows, component], s[rows, component])
  return np.clip(np.round(values), mixture.LOW, mixture.HIGH).astype(np.int32)


def code(coder, table, symbols, params):
  handle = tfc.create_range_encoder([], table)
  handle = coder.encode(handle, tf.constant(symbols), *params)
  data = tfc.entropy_encode_finalize(handle)
  handle = tfc.create_range_decoder(data, table)
  handle, decoded = coder.decode(handle, *params)
  return data.numpy(), decoded.numpy()


@pytest.mark.parametrize("k", [1, 3])
def test_round_trip_and_rate(k):
  coder = BisectionCoder()
  params = random_mixture(4000, k, seed=k)
  symbols = sample(coder, params, seed=k)
  data, decoded = code(coder, coder.table, symbols, params)
  np.testing.assert_array_equal(decoded, symbols)
  ideal = float(coder.ideal_bits(symbols, *params))
  assert 8 * len(data) <= ideal * 1.001 + 32, (8 * len(data), ideal)


def test_edges_and_far_tails():
  coder = BisectionCoder()
  n = 8
  params = [tf.zeros([n, 1], tf.int32), tf.zeros([n, 1], tf.int32),
            tf.zeros([n, 1], tf.int32)]
  symbols = np.array([-255, 256, 0, 200, -200, 1, -1, 255], np.int32)
  _, decoded = code(coder, coder.table, symbols, params)
  np.testing.assert_array_equal(decoded, symbols)


@pytest.mark.parametrize("outside", [-256, 257])
def test_symbols_outside_the_support_are_an_error(outside):
  """Never saturated silently: by the serial and the all-at-once encoder."""
  coder = BisectionCoder()
  params = [tf.zeros([2, 1], tf.int32)] * 3
  symbols = tf.constant([0, outside], tf.int32)
  with pytest.raises(tf.errors.InvalidArgumentError, match="outside"):
    code(coder, coder.table, symbols.numpy(), params)
  handle = tfc.create_range_encoder([], coder.table)
  with pytest.raises(tf.errors.InvalidArgumentError, match="outside"):
    coder.encode_positions(handle, symbols[None], *(p[None] for p in params))


def test_mixture_weights_from_integer_logits():
  coder = BisectionCoder()
  logits = tf.constant([[0, 0, -32], [5, 5 + 32 * 50, 5]], tf.int32)
  weights = coder.weights(logits).numpy()
  np.testing.assert_array_equal(weights[:, :2].max(1), [4096, 4096])
  assert weights[0, 2] == round(4096 * math.exp(-1))
  assert weights[1, 0] == 0  # exp(−50) rounds to 0


def _table_code(fractions, symbols_from, seed):
  table = ig.GaussianTable(fractions=fractions)
  rng = np.random.default_rng(seed)
  n = 20000
  means = (np.round(rng.normal(size=n) * 8 * 64) if fractions
           else np.zeros(n)).astype(np.int32)
  scales = rng.integers(0, ig.NUM_SCALES, size=n).astype(np.int32)
  sigma = ig.scales()[scales]
  symbols = np.clip(np.round(means / 64 + sigma * symbols_from(rng, n)),
                    table.low, table.high).astype(np.int32)
  data, decoded = code(table, table.table, symbols, (means, scales))
  np.testing.assert_array_equal(decoded, symbols)
  return table, 8 * len(data), symbols, means / 64, sigma


@pytest.mark.parametrize("fractions", [True, False])
def test_gaussian_table_round_trip_and_rate(fractions):
  table, bits, symbols, center, sigma = _table_code(
      fractions, lambda rng, n: rng.normal(size=n), seed=3)
  from scipy.special import log_ndtr  # pylint: disable=import-outside-toplevel
  upper = log_ndtr((symbols + .5 - center) / sigma)
  lower = log_ndtr((symbols - .5 - center) / sigma)
  ideal = -np.sum(np.log2(-np.expm1(lower - upper)) + upper / math.log(2))
  assert ideal * 0.999 - 64 <= bits <= ideal * 1.001 + 64, (bits, ideal)
  # The tables are a deterministic function of the grid.
  np.testing.assert_array_equal(
      ig.GaussianTable(fractions=fractions).table.numpy(), table.table.numpy())


def test_gaussian_table_escapes_far_tails():
  """Heavy tails, out to both ends of the coded range [low, high]."""
  table, _, symbols, center, sigma = _table_code(
      True, lambda rng, n: rng.standard_t(1.5, size=n) * 10, seed=4)
  assert {table.low, table.high} <= set(symbols)
  assert np.sum(np.abs(symbols - center) > ig.TAIL * sigma + 1) > 100
