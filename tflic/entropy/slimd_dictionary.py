"""Dictionary learning of SLIMD (Minnen, Toderici, Singh, Hwang, Covell
2018, "Image-dependent local entropy models for learned image compression",
§2.2, eq. 2).

The training data are normalized histograms q of the code values of one
channel in one T×T tile (over a fixed alphabet of S symbols). The dictionary
{p_k} minimizes eq. 2, Σ_i min_k KL(q_i ‖ p_k): the extra code length per
symbol of coding tile i with entry k instead of its own histogram.
Standard K-means++ chooses the initial entries (the paper: D² seeding, the
squared Euclidean distance between histograms), then K-means with KL
alternates assignment (the entry of least KL) and update (each entry becomes
the mean of its histograms, the minimizer of Σ KL(q ‖ p) over p); an entry
left without histograms is replaced by a random training histogram. Both
steps never increase eq. 2 (tests/test_slimd_dictionary.py).

KL is in bits. Entries are exact means, so an entry gives zero probability
to symbols none of its histograms has; the coder smooths them (a histogram
outside an entry's support costs infinity here and is never assigned to it).
"""

import numpy as np


def kl(q, p):
  """KL(q_i ‖ p_k) in bits, [n, k], for histograms q [n, S] and entries
  p [k, S] (rows summing to 1); infinite where q has mass and p none."""
  with np.errstate(divide="ignore", invalid="ignore"):
    log_q = np.where(q > 0, np.log2(np.where(q > 0, q, 1)), 0.)
    entropy = -(q * log_q).sum(1)  # H(q)
    log_p = np.log2(p)  # -inf where p == 0
    cross = -(q @ np.where(np.isfinite(log_p), log_p, 0.).T)
    impossible = (q > 0).astype(float) @ (p == 0).T.astype(float) > 0
  return np.where(impossible, np.inf,
                  np.maximum(cross - entropy[:, None], 0.))  # rounding


def nearest(q, p, chunk=16384):
  """(argmin_k, min_k) of KL(q_i ‖ p_k) for every i, in chunks of rows (the
  full [n, k] matrix of a large training set does not fit in memory)."""
  parts = [kl(q[i:i + chunk], p) for i in range(0, len(q), chunk)]
  return (np.concatenate([d.argmin(1) for d in parts]),
          np.concatenate([d.min(1) for d in parts]))


def objective(q, p):
  """Eq. 2: Σ_i min_k KL(q_i ‖ p_k)."""
  return float(nearest(q, p)[1].sum())


def squared_distances(q, p):
  """‖q_i − p‖² [n] for histograms q [n, S] and one p [S]."""
  return np.square(q - p).sum(1)


def kmeans_pp(q, k, rng):
  """Standard K-means++ seeding (D²): each next entry is a training
  histogram drawn with probability proportional to its squared Euclidean
  distance to the closest entry chosen so far."""
  entries = [q[rng.integers(len(q))]]
  closest = squared_distances(q, entries[0])
  for _ in range(1, k):
    if closest.sum() > 0:
      i = rng.choice(len(q), p=closest / closest.sum())
    else:  # every histogram is an entry already
      i = rng.integers(len(q))
    entries.append(q[i])
    closest = np.minimum(closest, squared_distances(q, q[i]))
  return np.stack(entries)


def fit(q, k, iterations=20, seed=0, progress=None):
  """The dictionary [k, S] of eq. 2 for histograms q [n, S], and eq. 2
  after each iteration (a list). progress(iteration, value) is called after
  each. Stops early when the assignment no longer changes."""
  q = np.asarray(q, np.float64)
  rng = np.random.default_rng(seed)
  p = kmeans_pp(q, k, rng)
  history, assignment = [], None
  for iteration in range(iterations):
    new, _ = nearest(q, p)
    if assignment is not None and np.array_equal(new, assignment):
      break
    assignment = new
    for j in range(k):
      members = assignment == j
      p[j] = q[members].mean(0) if members.any() else q[rng.integers(len(q))]
    history.append(objective(q, p))
    if progress:
      progress(iteration, history[-1])
  return p, history
