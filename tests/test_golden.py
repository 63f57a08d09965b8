"""Golden streams: files written by earlier releases decode with this one,
and this one writes the same bytes.

Each variant in tests/golden/ holds a tiny trained checkpoint, the files it
wrote for three images (tests/golden/make.py) and their decoded images. The
model is rebuilt from its checkpoint and exported (`Codec`) as a user would;
it must write exactly those bytes and decode them to those images (up to ±1
in a few pixels: the synthesis is float). A change that alters a stream
bumps the format version (`bitstream.VERSION`) and says why old files still
decode, or regenerates the goldens of a new model only.
"""

import os

import numpy as np
import pytest
import tensorflow as tf

from tflic import bitstream
from tests.conftest import VARIANTS, variants
from tests.golden import make


def test_every_model_has_golden_streams():
  from tflic import models  # pylint: disable=import-outside-toplevel
  assert {name for name, _ in make.VARIANTS.values()} == set(models.names())
  for variant in VARIANTS:
    assert os.path.exists(os.path.join(make.ROOT, variant, "photo.tfl")), variant


@pytest.mark.parametrize("variant", variants())
def test_golden_streams(codecs, variant):
  codec = codecs(variant)
  for name, image in make.images().items():
    folder = os.path.join(make.ROOT, variant)
    with open(os.path.join(folder, f"{name}.tfl"), "rb") as f:
      golden = f.read()
    assert golden[4] == bitstream.VERSION
    decoded = bitstream.raise_bitstream_errors(
        lambda: codec.decode(tf.constant(golden))["image"].numpy())
    expected = make.images_lib.read_image(
        os.path.join(folder, f"{name}.png"))[0]
    difference = np.abs(decoded.astype(int) - expected)
    assert difference.max() <= 1 and np.mean(difference > 0) < .01, name
    assert codec.encode(image)["bitstream_bytes"].numpy() == golden, name
