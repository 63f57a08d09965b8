"""log (N(0, σ²) * U(−½, ½))(x): the density of a noisy latent ỹ_i − μ_i
under the mean-scale Gaussian conditional (Minnen et al. 2018, eq. 2),
i.e. log of the mass of N(0, σ²) on [x − ½, x + ½].

The same values as tensorflow-compression's `NoisyNormal(0, σ).log_prob`
(float32 rounding apart), in a few operations instead of its four
`log_ndtr`s: by symmetry the mass is Φ̄(a) − Φ̄(b) with a = (|x| − ½)/σ,
b = (|x| + ½)/σ and Φ̄ = 1 − Φ = ½ erfc(·/√2), accurate in float32 while
Φ̄(a) is far from underflow (a < `TAIL`); beyond, log Φ̄ is its asymptotic
series (Abramowitz & Stegun 26.2.12) and log p = log Φ̄(a) + log(1 − Φ̄(b) /
Φ̄(a)). Each branch is evaluated only on its own domain, so neither
produces an infinite value or gradient."""

import math

import tensorflow as tf

TAIL = 8.  # Φ̄(8) = 6e-16; the series' first omitted term, 105 / a⁸, is 6e-6
_SQRT_HALF = math.sqrt(.5)
_LOG_SQRT_2PI = .5 * math.log(2 * math.pi)


def _log_tail(t):
  """log Φ̄(t) for t ≥ `TAIL`: −t²/2 − log(t √(2π)) + log(1 − 1/t² + 3/t⁴
  − 15/t⁶)."""
  u = 1. / tf.square(t)
  return (-.5 * tf.square(t) - tf.math.log(t) - _LOG_SQRT_2PI +
          tf.math.log1p(u * (-1. + u * (3. - 15. * u))))


def log_likelihood(x, scale):
  """log of the N(0, `scale`²) mass on [x − ½, x + ½], elementwise."""
  width = 1. / scale
  a = (tf.abs(x) - .5) * width
  near = tf.minimum(a, TAIL)
  direct = tf.math.log(.5 * (tf.math.erfc(near * _SQRT_HALF) -
                             tf.math.erfc((near + width) * _SQRT_HALF)))
  far = tf.maximum(a, TAIL)
  log_a = _log_tail(far)
  tail = log_a + tf.math.log1p(-tf.exp(_log_tail(far + width) - log_a))
  return tf.where(a < TAIL, direct, tail)
