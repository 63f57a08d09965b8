"""The demo and the command line of a variable-rate model: the quality
knob, the byte budget, the comparison with JPEG at the same sizes."""

import numpy as np
from PIL import Image
import pytest

from tflic import codec as codec_lib
from tflic import demo
from tflic import selection
from tests.conftest import run, tool


@pytest.fixture(scope="module")
def variable_rate(exports):
  return exports["hyperprior_vr"]


@pytest.mark.xdist_group("hyperprior_vr")  # (on the worker that has its codec)
def test_target_bpp_finds_the_largest_file_within_the_budget(variable_rate,
                                                              photo):
  saved = codec_lib.SavedCodec(variable_rate)
  image = photo[:128, :192]
  sizes = [len(saved.encode(image, q)) for q in (0., 100.)]
  for limit in (sizes[0] + (sizes[1] - sizes[0]) // 3, sizes[1] - 1):
    data, quality, fits = selection.fit_quality(saved, image, limit)
    assert fits and len(data) <= limit
    # Within a step of the bisection: a little more quality exceeds it.
    assert len(saved.encode(image, min(quality + 100 / 2 ** 11, 100.))) > (
        limit) or quality == 100.
  data, quality, fits = selection.fit_quality(saved, image, sizes[0] - 1)
  assert not fits and quality == 0. and len(data) == sizes[0]
  with pytest.raises(ValueError, match="outside"):
    saved.encode(image, 101.)


@pytest.mark.xdist_group("hyperprior_vr")  # (on the worker that has its codec)
def test_compare_with_jpeg_at_the_same_size(variable_rate, photo):
  saved = codec_lib.SavedCodec(variable_rate)
  image = photo[:96, :160]
  rows = demo.compare(saved, image, [20., 80.])
  for quality, ours, decoded, jpeg_quality, jpeg, jpeg_decoded in rows:
    assert jpeg["bytes"] <= ours["bytes"] or jpeg_quality == 1
    assert decoded.shape == jpeg_decoded.shape == image.shape
  assert "JPEG q=" in demo.table(rows)
  sheet = demo.picture(image, rows)
  assert sheet.width >= 4 * 96 and sheet.height >= 3 * (96 + demo.LABEL)


@pytest.mark.xdist_group("hyperprior_vr")  # (on the worker that has its codec)
def test_command_line(variable_rate, photo, tmp_path):
  """bin/compress --quality and --target_bpp with one model; bin/demo."""
  source = tmp_path / "in.png"
  Image.fromarray(photo[:96, :160]).save(source)
  saved = codec_lib.SavedCodec(variable_rate)
  result = tool(["bin/compress", f"--model={variable_rate}", "--quality=80",
                 str(source), str(tmp_path / "q80.tfl")])
  assert result.returncode == 0, result.stderr[-2000:]
  assert (tmp_path / "q80.tfl").read_bytes() == saved.encode(
      photo[:96, :160], 80.)
  limit = len(saved.encode(photo[:96, :160], 50.))
  target = (limit + .5) * 8 / (96 * 160)
  result = tool(["bin/compress", f"--model={variable_rate}", "-v",
                 f"--target_bpp={target}", str(source),
                 str(tmp_path / "t.tfl")])
  assert result.returncode == 0, result.stderr[-2000:]
  assert 0.9 * limit <= len((tmp_path / "t.tfl").read_bytes()) <= limit
  result = run(["bin/demo", f"--model={variable_rate}", f"--image={source}",
                "--qualities=10,90", f"--output={tmp_path / 'demo.png'}"])
  assert result.returncode == 0, result.stderr[-2000:]
  assert "JPEG q=" in result.stdout and (tmp_path / "demo.png").exists()
  assert np.asarray(Image.open(tmp_path / "demo.png")).ndim == 3
