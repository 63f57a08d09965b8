"""Every SavedModel shipped in export/ loads, is listed in the serving config,
codes an image exactly, in the current (portable) format, and decodes the
file it wrote when it shipped (tests/golden/shipped) to the same image, up
to the float synthesis (±1 in a few pixels). (Its encoder's bytes are not
compared: a trained model's float g_a may put a symbol on the other side
of a rounding boundary on another machine; tests/test_golden.py checks
encoders with models chosen to have none near one.)"""

import glob
import os

import numpy as np
import pytest

from tflic import bitstream
from tflic import codec as codec_lib
from tflic import export
from tflic import images
from tests.conftest import ROOT, random_image, tool
from tests.golden.shipped import make as golden

SHIPPED = sorted(glob.glob(os.path.join(ROOT, "export", "*", "[0-9]*")))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: os.path.relpath(p, ROOT))
def test_shipped_model_codes_an_image(path):
  name = os.path.basename(os.path.dirname(path))
  config = open(os.path.join(ROOT, "export", "models.config")).read()
  assert f'name: "{name}"' in config
  assert export.info(path)["model_id"]
  model = codec_lib.SavedCodec(path)
  image = random_image(48, 80, seed=9)
  data = model.encode(image)
  assert data[:4] == bitstream.MAGIC and data[4] == bitstream.VERSION
  decoded = model.decode(data)
  assert decoded.shape == image.shape
  np.testing.assert_array_equal(model.decode(model.encode(image)), decoded)
  stream, expected = golden.paths(path)
  with open(stream, "rb") as f:
    difference = np.abs(model.decode(f.read()).astype(int) -
                        images.read_image(expected)[0])
  assert difference.max() <= 1 and np.mean(difference > 0) < .01


def test_something_is_shipped():
  assert SHIPPED, "export/ holds no SavedModel"


def test_decompress_decodes_a_file_of_any_shipped_version(tmp_path):
  """Without --model, bin/decompress finds the shipped version that made
  the file (its model id): the newest's and the oldest's files (every
  version's file decodes: test_shipped_model_codes_an_image)."""
  versions = codec_lib.shipped_models()
  assert versions[0] == codec_lib.shipped_model()
  for path in sorted({versions[0], versions[-1]}):
    stream, expected = golden.paths(path)
    decoded = tmp_path / f"{os.path.basename(path)}.png"
    result = tool(["bin/decompress", stream, str(decoded)])
    assert result.returncode == 0, result.stderr
    difference = np.abs(images.read_image(str(decoded))[0].astype(int) -
                        images.read_image(expected)[0])
    assert difference.max() <= 1
