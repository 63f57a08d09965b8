"""Every SavedModel shipped in export/ loads, is listed in the serving config,
and codes an image exactly, in the current (portable) format."""

import glob
import os

import numpy as np
import pytest

from tflic import bitstream
from tflic import codec as codec_lib
from tflic import export
from tests.conftest import ROOT, random_image

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


def test_something_is_shipped():
  assert SHIPPED, "export/ holds no SavedModel"
