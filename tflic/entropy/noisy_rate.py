"""The training form of a rate (Ballé et al. 2018, §2): a latent y is
replaced by ỹ = y + u, u ~ U(−½, ½), and its rate by −log2 p(ỹ) under the
prior convolved with U(−½, ½).

`likelihood_bound` > 0 bounds each p(ỹ_i) below, as CompressAI's entropy
models (and tensorflow-compression 1.x's `likelihood_bound`) do at 1e-9: an
element beyond the bound adds −log2(bound) bits and almost no gradient
(the gradient of −log p is scaled by p / bound), so a few outliers, which
the coder escapes for a few bits, do not pull the whole prior towards them
(docs/training.md)."""

import math

import tensorflow as tf
import tensorflow_compression as tfc


def noisy_rate(latent, log_prob, likelihood_bound=0.):
  """(ỹ = latent + u, bits per batch item of ỹ under `log_prob`, a function
  of ỹ giving log-likelihoods of its shape [B, ...])."""
  noisy = latent + tf.random.uniform(tf.shape(latent), -.5, .5,
                                     latent.dtype)
  log_p = log_prob(noisy)
  if likelihood_bound:
    log_p = tf.math.log(tfc.lower_bound(tf.math.exp(log_p),
                                        likelihood_bound))
  axes = tf.range(1, tf.rank(log_p))
  return noisy, tf.reduce_sum(log_p, axes) / -math.log(2.)
