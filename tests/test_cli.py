"""bin/compress and bin/decompress on real files: the same bytes as the
SavedModel signatures, -v figures, conversions, refusals and clean failures."""

import os

import numpy as np
from PIL import Image
import pytest

from tflic import codec as codec_lib
from tflic import images
from tflic import models
from tests.conftest import ROOT, random_image, run, tool


def test_compress_decompress_files(exported_dir, photo, tmp_path):
  source, coded, decoded = (str(tmp_path / n) for n in ("in.png", "a.tfl", "a.png"))
  Image.fromarray(photo).save(source)
  result = run(["bin/compress", f"--model={exported_dir}", "-v", source, coded])
  assert result.returncode == 0, result.stderr[-3000:]
  assert "bpp" in result.stdout and "PSNR" in result.stdout
  assert "MS-SSIM" in result.stdout and "encode" in result.stdout
  library = codec_lib.SavedCodec(exported_dir)
  data = open(coded, "rb").read()
  assert data == library.encode(photo)
  bpp = float(result.stdout.split(" bpp")[0].rsplit(" ", 1)[1])
  assert bpp == pytest.approx(8 * len(data) / (400 * 600), abs=1e-4)

  result = run(["bin/decompress", f"--model={exported_dir}", "-v", coded, decoded])
  assert result.returncode == 0, result.stderr[-3000:]
  np.testing.assert_array_equal(np.asarray(Image.open(decoded)),
                                library.decode(data))

  # Existing outputs are never replaced without --overwrite.
  result = tool(["bin/decompress", f"--model={exported_dir}", coded, decoded])
  assert result.returncode == 1 and "--overwrite" in result.stderr
  # A damaged stream: one line, non-zero exit, no output file.
  damaged = bytearray(data)
  damaged[len(data) // 2] ^= 1
  open(coded, "wb").write(bytes(damaged))
  result = tool(["bin/decompress", f"--model={exported_dir}", coded,
                 str(tmp_path / "new.png")])
  assert result.returncode == 1
  assert result.stderr.strip().splitlines() == [
      "decompress: error: damaged bitstream (integrity check failed)"]
  assert sorted(os.listdir(tmp_path)) == ["a.png", "a.tfl", "in.png"]


def test_rgba_input_is_converted_with_a_notice(exported_dir, tmp_path):
  rgba = np.dstack([random_image(20, 30), np.full((20, 30), 128, np.uint8)])
  Image.fromarray(rgba, "RGBA").save(tmp_path / "in.png")
  result = tool(["bin/compress", f"--model={exported_dir}",
                 str(tmp_path / "in.png"), str(tmp_path / "out.tfl")])
  assert result.returncode == 0, result.stderr[-3000:]
  assert "notice:" in result.stdout and "alpha channel dropped" in result.stdout


def test_input_conversions(tmp_path):
  gray = random_image(9, 11)[..., 0]
  Image.fromarray(gray, "L").save(tmp_path / "gray.png")
  array, notices = images.read_image(str(tmp_path / "gray.png"))
  assert array.shape == (9, 11, 3) and "grayscale" in notices[0]
  np.testing.assert_array_equal(array[..., 2], gray)

  deep = (gray.astype(np.uint16) * 257)
  Image.fromarray(deep).save(tmp_path / "deep.png")
  array, notices = images.read_image(str(tmp_path / "deep.png"))
  assert array.dtype == np.uint8 and "8-bit" in notices[0]
  np.testing.assert_array_equal(array[..., 0], gray)

  (tmp_path / "text.png").write_text("not an image")
  with pytest.raises(images.ImageError, match="not a readable image"):
    images.read_image(str(tmp_path / "text.png"))


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
  def fail(f):
    f.write(b"half")
    raise RuntimeError("disk full")
  with pytest.raises(RuntimeError):
    images.atomic_write(str(tmp_path / "out"), fail)
  assert os.listdir(tmp_path) == []
  images.write_bytes(str(tmp_path / "ok"), b"data")
  mask = os.umask(0)
  os.umask(mask)
  assert os.stat(tmp_path / "ok").st_mode & 0o777 == 0o666 & ~mask


def test_every_model_has_a_tiny_and_a_paper_flagfile():
  """What a newcomer runs first (tiny: minutes on a CPU) and the paper's
  size (GPUs), for every registered model and SLIMD."""
  for name in models.names() + ["slimd"]:
    for size in ("tiny", "paper"):
      path = os.path.join(ROOT, "configs", f"{name}_{size}.cfg")
      lines = open(path).read().splitlines()
      model = next(l.split("=", 1)[1] for l in lines
                   if l.startswith("--model="))
      assert model in models.names(), (path, model)
