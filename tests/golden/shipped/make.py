"""Makes the golden stream of a shipped SavedModel (tests/test_shipped.py):
the file it writes for the golden photo crop and the image it decodes to.
Run by hand, from the repository root, once per shipped version:

  python -m tests.golden.shipped.make export/NAME/VERSION
"""

import os
import sys

from PIL import Image

from tflic import codec as codec_lib
from tests.golden import make

ROOT = os.path.dirname(os.path.abspath(__file__))


def paths(export_dir):
  """(stream, decoded image) paths of export/NAME/VERSION's golden."""
  version = os.path.basename(os.path.normpath(export_dir))
  name = os.path.basename(os.path.dirname(os.path.normpath(export_dir)))
  stem = os.path.join(ROOT, f"{name}-{version}")
  return stem + ".tfl", stem + ".png"


def main(export_dir):
  saved = codec_lib.SavedCodec(export_dir)
  data = saved.encode(make.images()["photo"])
  stream, image = paths(export_dir)
  with open(stream, "wb") as f:
    f.write(data)
  Image.fromarray(saved.decode(data)).save(image)
  print(f"{stream}: {len(data)} bytes")


if __name__ == "__main__":
  main(sys.argv[1])
