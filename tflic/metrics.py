"""Image quality and rate measures: PSNR, MS-SSIM, bits per pixel, and the
Bjøntegaard deltas (BD-rate, BD-PSNR) between rate-distortion curves."""

import math

import numpy as np
import tensorflow as tf

# Wang, Simoncelli, Bovik 2003, Table 1 (as tf.image.ssim_multiscale uses them).
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def psnr_from_mse(mse, max_val=255.):
  return 10. * tf.math.log(max_val ** 2 / mse) / tf.math.log(10.)


def psnr(a, b):
  """PSNR in dB of two uint8 images (inf if identical)."""
  mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
  return math.inf if mse == 0 else 10. * math.log10(255. ** 2 / mse)


def ms_ssim_scales(height, width, filter_size=11):
  """How many of the 5 MS-SSIM scales fit an image (each halves the size and
  the smallest must still hold the 11×11 window)."""
  scales = 1
  while scales < 5 and min(height, width) >= filter_size * 2 ** scales:
    scales += 1
  return scales


def ms_ssim(a, b, max_val=255.):
  """TensorFlow's MS-SSIM; small images use the first scales that fit, with
  their weights (images under 11 pixels fall back to plain SSIM with a
  smaller window)."""
  a = tf.convert_to_tensor(a)
  b = tf.convert_to_tensor(b)
  height, width = a.shape[-3], a.shape[-2]
  if height is None or width is None:
    scales = 5
  else:
    scales = ms_ssim_scales(height, width)
  if min(height or 11, width or 11) < 11:
    size = max(1, min(height, width))
    return tf.reduce_mean(tf.image.ssim(a, b, max_val, filter_size=size))
  weights = MS_SSIM_WEIGHTS[:scales]
  return tf.reduce_mean(tf.image.ssim_multiscale(a, b, max_val,
                                                 power_factors=weights))


def image_ms_ssim(a, b):
  """MS-SSIM of two uint8 images [H, W, 3] as a float."""
  return float(ms_ssim(tf.constant(a, tf.float32), tf.constant(b, tf.float32)))


def bpp(num_bytes, height, width):
  """Bits per pixel of a coded file: every byte counts."""
  return 8. * num_bytes / (height * width)


def ms_ssim_db(value):
  """MS-SSIM in decibels, −10·log10(1 − MS-SSIM) (inf for a perfect 1)."""
  return math.inf if value >= 1. else -10. * math.log10(1. - value)


def _pchip_slopes(x, y):
  """Derivatives of the monotone piecewise cubic Hermite interpolant (PCHIP,
  Fritsch & Carlson 1980 with the weighted harmonic mean of Fritsch & Butland
  1984 and the shape-preserving 3-point ends), as Matlab's and SciPy's pchip."""
  h = np.diff(x)
  delta = np.diff(y) / h
  if len(x) == 2:
    return np.full(2, delta[0])
  slopes = np.zeros_like(y)
  w1, w2 = 2. * h[1:] + h[:-1], h[1:] + 2. * h[:-1]
  same_sign = delta[:-1] * delta[1:] > 0.
  with np.errstate(divide="ignore", invalid="ignore"):
    harmonic = (w1 + w2) / (w1 / delta[:-1] + w2 / delta[1:])
  slopes[1:-1] = np.where(same_sign, harmonic, 0.)

  def end(h0, h1, d0, d1):
    slope = ((2. * h0 + h1) * d0 - h0 * d1) / (h0 + h1)
    if np.sign(slope) != np.sign(d0):
      return 0.
    if np.sign(d0) != np.sign(d1) and abs(slope) > 3. * abs(d0):
      return 3. * d0
    return slope

  slopes[0] = end(h[0], h[1], delta[0], delta[1])
  slopes[-1] = end(h[-1], h[-2], delta[-1], delta[-2])
  return slopes


def pchip_integral(x, y, low, high):
  """∫ from low to high of the PCHIP interpolant through (x, y), x increasing
  and [low, high] within [x[0], x[-1]]: exact, segment by segment."""
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  slopes = _pchip_slopes(x, y)
  total = 0.
  for k in range(len(x) - 1):
    a, b = max(low, x[k]), min(high, x[k + 1])
    if a >= b:
      continue
    h = x[k + 1] - x[k]
    # The segment's cubic in t = (x − x_k) / h: c0 + c1·t + c2·t² + c3·t³.
    c0, c1 = y[k], h * slopes[k]
    c2 = 3. * (y[k + 1] - y[k]) - h * (2. * slopes[k] + slopes[k + 1])
    c3 = 2. * (y[k] - y[k + 1]) + h * (slopes[k] + slopes[k + 1])
    ta, tb = (a - x[k]) / h, (b - x[k]) / h
    total += h * sum(c / (n + 1) * (tb ** (n + 1) - ta ** (n + 1))
                     for n, c in enumerate((c0, c1, c2, c3)))
  return total


def _rd_curve(rates, qualities, name):
  """A curve's log-rates and qualities, ordered by rate; checked to have ≥ 2
  points, positive finite rates, finite qualities and quality rising with
  rate (BD deltas are defined for monotone curves only)."""
  rates = np.asarray(rates, np.float64).ravel()
  qualities = np.asarray(qualities, np.float64).ravel()
  if rates.shape != qualities.shape:
    raise ValueError(f"{name} curve: {len(rates)} rates but {len(qualities)} "
                     "qualities")
  if len(rates) < 2:
    raise ValueError(f"{name} curve has {len(rates)} point(s); BD needs ≥ 2")
  if not (np.all(np.isfinite(rates)) and np.all(rates > 0.)
          and np.all(np.isfinite(qualities))):
    raise ValueError(f"{name} curve: rates must be positive and finite, "
                     "qualities finite")
  order = np.argsort(rates)
  log_rates, qualities = np.log(rates[order]), qualities[order]
  if np.any(np.diff(log_rates) <= 0.) or np.any(np.diff(qualities) <= 0.):
    raise ValueError(f"{name} curve is not monotonic (quality must rise "
                     "strictly with rate)")
  return log_rates, qualities


def _overlap(a, b, what):
  low, high = max(a[0], b[0]), min(a[-1], b[-1])
  if not low < high:
    raise ValueError(f"the curves do not overlap in {what}")
  return low, high


def bd_rate(anchor_rates, anchor_qualities, test_rates, test_qualities):
  """Bjøntegaard delta rate (VCEG-M33), in percent: the mean rate change of the
  test curve against the anchor at equal quality (−20 = 20 % fewer bits).

  As the JCT-VC/JVET common test conditions compute it: log-rate is
  interpolated as a piecewise cubic (PCHIP) function of quality for each curve,
  and the difference is averaged over the qualities both curves reach."""
  log_a, quality_a = _rd_curve(anchor_rates, anchor_qualities, "anchor")
  log_t, quality_t = _rd_curve(test_rates, test_qualities, "test")
  low, high = _overlap(quality_a, quality_t, "quality")
  mean = (pchip_integral(quality_t, log_t, low, high)
          - pchip_integral(quality_a, log_a, low, high)) / (high - low)
  return 100. * math.expm1(mean)


def bd_psnr(anchor_rates, anchor_qualities, test_rates, test_qualities):
  """Bjøntegaard delta quality (BD-PSNR for PSNR, in the quality's unit): the
  mean quality change of the test curve at equal rate, quality interpolated as
  a PCHIP function of log-rate over the rates both curves reach."""
  log_a, quality_a = _rd_curve(anchor_rates, anchor_qualities, "anchor")
  log_t, quality_t = _rd_curve(test_rates, test_qualities, "test")
  low, high = _overlap(log_a, log_t, "rate")
  return (pchip_integral(log_t, quality_t, low, high)
          - pchip_integral(log_a, quality_a, low, high)) / (high - low)
