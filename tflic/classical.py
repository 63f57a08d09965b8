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
  hevc      HEVC intra in a HEIF file (libheif + x265, plugin pillow-heif), the
            stand-in for BPG: `quality` 0-100, 4:4:4 (`chroma=444`, as the
            papers' BPG and VTM anchors), x265 `preset=medium` (x265's default)
            and `tune=psnr` (no psycho-visual tuning, like the reference
            encoders), 8 bits, full-range YCbCr BT.601.
  jxl       JPEG XL (libjxl, plugin pillow-jxl-plugin): `quality` 0-100
            (libjxl maps it to a Butteraugli distance, 15 at quality 0: the
            plugin allows no lower rate), `effort=7` (libjxl's default), XYB.

The default sweeps cover about 0.1-2 bpp on Kodak (JPEG 4:4:4 cannot go much
below 0.2 bpp, JPEG XL below ~0.15; HEVC reaches ~0.05). hevc and jxl need
the optional plugins: `pip install 'tflic[codecs]'`.
"""

import dataclasses
import importlib
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
  plugin: str = ""  # the Pillow plugin's module, if Pillow lacks the format
  package: str = ""  # and its package on PyPI

  def require(self):
    """Registers the codec's Pillow plugin; a missing one is a ValueError
    that names the package and the extra that installs it."""
    if not self.plugin:
      return
    try:
      module = importlib.import_module(self.plugin)
    except ImportError:
      raise ValueError(f"codec {self.name} needs the Pillow plugin "
                       f"{self.package}: pip install 'tflic[codecs]'") from None
    if hasattr(module, "register_heif_opener"):  # pillow_jxl registers on import
      module.register_heif_opener()

  def encode(self, image, quality):
    """uint8 [H, W, 3] → bytes of a complete file."""
    self.require()
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
    self.require()
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


def _hevc(quality, shape):
  del shape
  return dict(quality=_quality(quality, 0, 100), chroma=444,
              enc_params=dict(preset="medium", tune="psnr"))


def _jxl(quality, shape):
  del shape
  return dict(quality=_quality(quality, 0, 100), effort=7)


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
    ClassicalCodec("hevc", "HEIF", "quality", "4:4:4",
                   (0, 5, 10, 15, 20, 25, 30, 40, 50), _hevc,
                   "pillow_heif", "pillow-heif"),
    ClassicalCodec("jxl", "JXL", "quality", "4:4:4 (XYB)",
                   (0, 10, 20, 30, 45, 60, 75, 85, 90), _jxl,
                   "pillow_jxl", "pillow-jxl-plugin"),
)}


def get(name):
  """The codec called `name` (a key of CODECS)."""
  try:
    return CODECS[name]
  except KeyError:
    raise ValueError(f"unknown codec {name!r} (known: "
                     f"{', '.join(CODECS)})") from None
