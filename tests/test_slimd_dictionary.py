"""SLIMD's dictionary learning (§2.2, eq. 2): KL K-means."""

import numpy as np

from tflic.entropy import slimd_dictionary as sd


def histograms(n=400, symbols=12, seed=0):
  """Normalized histograms of 16×16 tiles from a few Laplacian-like shapes
  of different widths, some with zero bins."""
  rng = np.random.default_rng(seed)
  centre = np.arange(symbols) - symbols // 2
  result = []
  for _ in range(n):
    width = rng.choice([0.3, 1., 3.])
    values = np.clip(np.round(rng.laplace(0, width, 256)), centre[0],
                     centre[-1]).astype(int)
    result.append(np.bincount(values - centre[0], minlength=symbols) / 256.)
  return np.array(result)


def test_kl_is_the_extra_code_length():
  q = np.array([[.5, .5, 0.], [1., 0., 0.]])
  p = np.array([[.25, .25, .5], [.5, .5, 0.], [0., .5, .5]])
  expected = np.array([[1., 0., np.inf], [2., 1., np.inf]])
  np.testing.assert_allclose(sd.kl(q, p), expected)


def test_kmeans_lowers_eq2_and_leaves_no_entry_empty():
  q = histograms()
  values = []
  p, history = sd.fit(q, 16, iterations=30, seed=1,
                      progress=lambda i, v: values.append(v))
  assert values == history and len(history) >= 2
  assert all(b <= a + 1e-9 for a, b in zip(history, history[1:])), history
  # Better than the K-means++ seeding alone, and far better than one entry.
  seeded = sd.objective(q, sd.kmeans_pp(q, 16, np.random.default_rng(1)))
  assert history[-1] < seeded
  assert history[-1] < 0.5 * sd.objective(q, q.mean(0, keepdims=True))
  np.testing.assert_allclose(p.sum(1), 1.)
  assignment = sd.kl(q, p).argmin(1)
  assert len(np.unique(assignment)) == 16  # every entry is used


def test_empty_entries_are_replaced():
  """More entries than distinct histograms: an entry the assignment leaves
  empty becomes a training histogram, so no entry stays unused (or NaN)."""
  q = np.repeat(np.eye(4), 10, 0)  # four distinct histograms
  p, history = sd.fit(q, 6, seed=0)
  assert np.isfinite(p).all()
  assert history[-1] == 0.
  assert all(any(np.array_equal(row, h) for h in np.eye(4)) for row in p)
