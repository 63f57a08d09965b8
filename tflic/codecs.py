"""Classical image codecs through Pillow, to compare learned codecs with.

Each codec codes a uint8 RGB image [H, W, 3] to the bytes of a complete file
(every header byte counts in its rate) at one setting of its sweep:

  jpeg      libjpeg(-turbo): `quality` 1-100, 4:4:4 (`subsampling=0`), optimized
            Huffman tables (`optimize=True`), baseline.
  webp      libwebp lossy: `quality` 0-100, `method=6` (slowest, smallest). Pillow
            gives WebP lossy no chroma choice: it is always 4:2:0.
  jpeg2000  OpenJPEG, JP2 file: the setting is a target rate in bits per pixel,
            given to OpenJPEG's rate control as `quality_mode="rates"` with a
            compression ratio of 24 / bpp (8-bit RGB); 9/7 irreversible wavelet
            and the irreversible colour transform (`irreversible=True, mct=1`),
            one quality layer. No chroma subsampling (4:4:4).
  avif      libavif (AOM encoder): `quality` 0-100, 4:4:4
            (`subsampling="4:4:4"`), `speed=6` (Pillow's default), full range.

The default sweeps cover about 0.1-2 bpp on Kodak (JPEG 4:4:4 cannot go much
below 0.2 bpp).
"""

import dataclasses
import io
import math
import typing

import numpy as np
from PIL import Image

from tflic import images


@dataclasses.dataclass(frozen=True)
class ClassicalCodec:
  """A Pillow format, its save options for one setting, a default sweep."""
  name: str
  format: str
  setting: str  # what the number of a setting means
  chroma: str
  qualities: tuple
  options: typing.Callable

  def encode(self, image, quality):
    """uint8 [H, W, 3] → bytes of a complete file."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
      raise ValueError(f"expected a uint8 [H, W, 3] image, got {image.dtype} "
                       f"{image.shape}")
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, self.format,
                                **self.options(quality, image.shape))
    return buffer.getvalue()

  def decode(self, data):
    """bytes → uint8 [H, W, 3]."""
    return decode(data)


def decode(data):
  """Any file Pillow reads, as uint8 RGB [H, W, 3]."""
  return images.read_image(io.BytesIO(data))[0]


def _quality(quality, low, high):
  if not (low <= quality <= high and float(quality).is_integer()):
    raise ValueError(f"quality must be an integer in [{low}, {high}], "
                     f"got {quality}")
  return int(quality)


def _jpeg(quality, shape):
  del shape
  return dict(quality=_quality(quality, 1, 100), subsampling=0, optimize=True)


def _webp(quality, shape):
  del shape
  return dict(quality=_quality(quality, 0, 100), method=6)


def _jpeg2000(bits_per_pixel, shape):
  if not 0 < bits_per_pixel < 24:
    raise ValueError(f"jpeg2000 rate must be in (0, 24) bpp, got {bits_per_pixel}")
  # Up to 6 resolution levels (OpenJPEG's default), fewer for small images:
  # the lowest resolution must keep at least one pixel.
  levels = max(1, min(6, int(math.log2(min(shape[:2]))) + 1))
  return dict(quality_mode="rates", quality_layers=[24. / bits_per_pixel],
              irreversible=True, mct=1, num_resolutions=levels)


def _avif(quality, shape):
  del shape
  return dict(quality=_quality(quality, 0, 100), subsampling="4:4:4", speed=6,
              range="full")


CODECS = {c.name: c for c in (
    ClassicalCodec("jpeg", "JPEG", "quality", "4:4:4",
                   (3, 5, 10, 20, 30, 50, 70, 80, 85), _jpeg),
    ClassicalCodec("webp", "WEBP", "quality", "4:2:0",
                   (0, 5, 15, 30, 50, 70, 80, 85, 90), _webp),
    ClassicalCodec("jpeg2000", "JPEG2000", "bpp", "4:4:4",
                   (0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 2.5),
                   _jpeg2000),
    ClassicalCodec("avif", "AVIF", "quality", "4:4:4",
                   (10, 20, 30, 40, 50, 60, 70, 80, 85), _avif),
)}


def get(name):
  """The codec called `name` (a key of CODECS)."""
  try:
    return CODECS[name]
  except KeyError:
    raise ValueError(f"unknown codec {name!r} (known: "
                     f"{', '.join(CODECS)})") from None
