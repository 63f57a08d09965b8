"""benchmark.measure reports the real file against the model's estimate."""

import math

from tflic import benchmark
from tflic import train
from tests.conftest import random_image


def test_measure(trained_dir):
  result = benchmark.measure(train.load(trained_dir),
                             [random_image(64, 96, seed=1), random_image(70, 50)])
  assert result["images"] == 2 and result["header_bytes"] == 38
  assert result["bpp"] > 0 and math.isfinite(result["overhead_percent"])
  assert "overhead_percent" in benchmark.table({"m": result})
