"""benchmark.measure reports the real file against the model's estimate."""

import math

import numpy as np
import pytest

from tflic import benchmark
from tflic import slimd_fit
from tflic import train
from tests.conftest import random_image


def test_measure(trained_dir):
  result = benchmark.measure(train.load(trained_dir),
                             [random_image(64, 96, seed=1), random_image(70, 50)])
  assert result["images"] == 2 and result["header_bytes"] == 46
  assert result["bpp"] > 0 and math.isfinite(result["overhead_percent"])
  assert 0 < result["side_percent"] < 100  # ẑ's share
  assert "overhead_percent" in benchmark.table({"m": result})


def test_measure_slimd(run_dirs):
  """SLIMD's rows: no estimate of its own (the prior's would be the
  factorized one), the side information's share, and its indices against
  DEFLATE."""
  slimd_dir = run_dirs("slimd")
  model = train.load(slimd_dir)
  model.use_slimd(slimd_fit.load(slimd_dir))
  images = [random_image(64, 96, seed=1)]
  result = benchmark.measure(model, images)
  assert result["overhead_percent"] is None and result["header_bytes"] == 46
  assert 0 < result["side_percent"] < 100
  line = benchmark.slimd_side_information(model, images)
  assert "bits coded" in line and "DEFLATEd" in line


@pytest.mark.slow
def test_fresh_context_model_and_growth():
  model = benchmark.parse_spec(
      "joint:num_filters=8:latent_channels=8:hyper_channels=8")
  small = benchmark.measure(model, [random_image(64, 64, seed=2)])
  large = benchmark.measure(model, [random_image(128, 128, seed=3)])
  assert (small["positions"], large["positions"]) == (16, 64)
  assert small["loop_s"] > 0 and small["ms_per_position"] > 0
  assert math.isfinite(small["overhead_percent"])  # tiny files: a few bytes
  line = benchmark.growth("joint", [(128 * 128, large), (64 * 64, small)])
  assert line.startswith("joint: area ×4.00: encode ×")
  assert "loop ×" in line


@pytest.mark.slow  # peak memory: make test-all
def test_peak_memory_in_fresh_processes():
  """Each operation's peak RSS is that of its own process: about that of a
  process that only loads the SavedModel (TensorFlow alone takes hundreds
  of MB, more on some machines), plus little for a tiny image; a failed
  operation is reported, not raised."""
  model = benchmark.parse_spec(
      "hyperprior:num_filters=8:latent_channels=8:hyper_channels=8")
  rows = benchmark.peak_memory(
      model, [random_image(64, 96), np.zeros((1, 65536, 3), np.uint8)],
      1 << 30)
  row, failed = rows
  assert "too large" in failed["error"] and failed["encode_s"] is None
  assert row["error"] is None and row["pixels"] == 64 * 96
  for operation in ("encode", "decode"):
    assert row[f"{operation}_s"] > 0
    runtime = row["runtime_bytes"]
    assert 100 << 20 < runtime
    assert 0.9 * runtime < row[f"{operation}_bytes"] < runtime + (256 << 20)
  assert 0 < row["load_s"] < 60
  table = benchmark.memory_table({"hyperprior": rows})
  assert "0.01" in table and "the runtime alone" in table
  assert f"loads in {row['load_s']:.1f} s" in table


def test_spec_errors():
  for spec, message in [("nope", "unknown model"),
                        ("joint:latent_channels", "key=value")]:
    try:
      benchmark.parse_spec(spec)
    except ValueError as e:
      assert message in str(e)
    else:
      raise AssertionError(spec)


@pytest.mark.slow
def test_staged_model_reports_the_rate_by_stage():
  model = benchmark.parse_spec("qian2021:num_filters=8:latent_channels=8:"
                               "hyper_channels=8:search_rows=1")
  assert model.latent_codec.y_codec.search_rows == 1
  result = benchmark.measure(model, [random_image(64, 64, seed=4)])
  assert len(result["stage_bpp"]) == 3 and min(result["stage_bpp"]) > 0
  assert "+ reference" in benchmark.stage_line("q", result)
  fresh = benchmark.parse_spec("qian2021:num_filters=8:latent_channels=8:"
                               "hyper_channels=8:reference=false")
  assert fresh.latent_codec.y_codec.reference is False


@pytest.mark.slow  # two models traced: make test-all
def test_training_speed_times_each_precision_in_turns():
  seconds = benchmark.training_speed(
      "hyperprior:num_filters=8:latent_channels=8:hyper_channels=8",
      ["float32", "mixed_bfloat16"], patch_size=64, batch_size=2, steps=2,
      repeats=2)
  assert list(seconds) == ["float32", "mixed_bfloat16"]
  assert all(len(v) == 2 and min(v) > 0 for v in seconds.values())
  table = benchmark.speed_table({"hp": seconds}).splitlines()
  assert "speed-up" in table[0] and "1.00×" in table[1]
  assert table[2].startswith("hp") and "mixed_bfloat16" in table[2]
