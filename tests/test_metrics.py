"""Bjøntegaard deltas (BD-rate, BD-PSNR) and the PCHIP they are built on."""

import math

import numpy as np
import pytest

from tflic import metrics

RATES = np.array([0.12, 0.25, 0.5, 1.0, 1.9])
PSNRS = np.array([27.1, 29.4, 32.0, 35.2, 38.3])


def test_identical_curves_give_zero():
  assert metrics.bd_rate(RATES, PSNRS, RATES, PSNRS) == pytest.approx(0., abs=1e-12)
  assert metrics.bd_psnr(RATES, PSNRS, RATES, PSNRS) == pytest.approx(0., abs=1e-12)


def test_scaled_rates_give_that_rate_change():
  assert metrics.bd_rate(RATES, PSNRS, 0.8 * RATES, PSNRS) == pytest.approx(
      -20., abs=1e-6)
  assert metrics.bd_rate(RATES, PSNRS, 1.25 * RATES, PSNRS) == pytest.approx(
      25., abs=1e-6)
  # The points' order does not matter.
  assert metrics.bd_rate(RATES[::-1], PSNRS[::-1], 0.8 * RATES, PSNRS) == (
      pytest.approx(-20., abs=1e-6))


def test_shifted_quality_gives_that_bd_psnr():
  assert metrics.bd_psnr(RATES, PSNRS, RATES, PSNRS + .5) == pytest.approx(
      .5, abs=1e-9)
  # Swapping anchor and test flips the sign; the rate delta inverts.
  assert metrics.bd_psnr(RATES, PSNRS + .5, RATES, PSNRS) == pytest.approx(
      -.5, abs=1e-9)
  forward = metrics.bd_rate(RATES, PSNRS, RATES[:4] * 0.9, PSNRS[:4] + .2)
  backward = metrics.bd_rate(RATES[:4] * 0.9, PSNRS[:4] + .2, RATES, PSNRS)
  assert (1 + forward / 100) * (1 + backward / 100) == pytest.approx(1., abs=1e-9)


def test_pchip_integral_matches_scipy():
  interpolate = pytest.importorskip("scipy.interpolate")
  rng = np.random.default_rng(0)
  for trial in range(300):
    n = int(rng.integers(2, 8))
    x = np.cumsum(rng.uniform(.1, 2., n))
    y = rng.normal(size=n) * 10.
    if trial % 2:
      y = np.sort(y)  # monotone, as RD curves are
    if trial % 5 == 0:
      y[int(rng.integers(n))] = y[0]  # flat pieces
    low, high = np.sort(rng.uniform(x[0], x[-1], 2))
    expected = interpolate.PchipInterpolator(x, y).integrate(low, high)
    assert metrics.pchip_integral(x, y, low, high) == pytest.approx(
        expected, rel=1e-12, abs=1e-12)


def test_bd_matches_the_reference_formula():
  """BD as the JVET CTC / `bjontegaard` package compute it: PCHIP (SciPy's),
  log10 rate, integrals over the overlap."""
  interpolate = pytest.importorskip("scipy.interpolate")
  anchor = np.array([9487.76, 4593.60, 2486.44, 1358.24])[::-1]
  anchor_psnr = np.array([40.037, 38.615, 36.845, 34.851])[::-1]
  test = np.array([9787.80, 4469.00, 2451.52, 1356.24])[::-1]
  test_psnr = np.array([40.121, 38.651, 36.970, 34.987])[::-1]
  low = max(anchor_psnr.min(), test_psnr.min())
  high = min(anchor_psnr.max(), test_psnr.max())
  mean = (interpolate.PchipInterpolator(test_psnr, np.log10(test)).integrate(low, high)
          - interpolate.PchipInterpolator(anchor_psnr, np.log10(anchor)).integrate(
              low, high)) / (high - low)
  assert metrics.bd_rate(anchor, anchor_psnr, test, test_psnr) == pytest.approx(
      (10 ** mean - 1) * 100, abs=1e-9)
  low = np.log10(max(anchor.min(), test.min()))
  high = np.log10(min(anchor.max(), test.max()))
  mean = (interpolate.PchipInterpolator(np.log10(test), test_psnr).integrate(low, high)
          - interpolate.PchipInterpolator(np.log10(anchor), anchor_psnr).integrate(
              low, high)) / (high - low)
  assert metrics.bd_psnr(anchor, anchor_psnr, test, test_psnr) == pytest.approx(
      mean, abs=1e-9)


def test_two_point_curves_are_linear_in_log_rate():
  rates, psnrs = [0.5, 2.], [30., 36.]
  assert metrics.bd_psnr(rates, psnrs, [0.5, 1.], [31., 34.]) == pytest.approx(
      1., abs=1e-9)


@pytest.mark.parametrize("curve, message", [
    (([1.], [30.]), "1 point"),
    (([1., 2., 3.], [30., 32.]), "3 rates but 2"),
    (([0., 1.], [30., 32.]), "positive"),
    (([1., 2.], [30., math.nan]), "finite"),
    (([1., 2., 3.], [30., 33., 32.]), "not monotonic"),
    (([1., 1., 2.], [30., 31., 32.]), "not monotonic"),
])
def test_bad_curves_are_clear_errors(curve, message):
  with pytest.raises(ValueError, match=message):
    metrics.bd_rate(RATES, PSNRS, *curve)
  with pytest.raises(ValueError, match=message):
    metrics.bd_psnr(*curve, RATES, PSNRS)


def test_curves_without_overlap_are_errors():
  with pytest.raises(ValueError, match="do not overlap in quality"):
    metrics.bd_rate(RATES, PSNRS, RATES, PSNRS + 20.)
  with pytest.raises(ValueError, match="do not overlap in rate"):
    metrics.bd_psnr(RATES, PSNRS, RATES * 100., PSNRS)


def test_ms_ssim_db():
  assert metrics.ms_ssim_db(0.9) == pytest.approx(10.)
  assert metrics.ms_ssim_db(0.99) == pytest.approx(20.)
  assert metrics.ms_ssim_db(1.) == math.inf
