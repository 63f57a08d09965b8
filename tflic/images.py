"""Image files ↔ uint8 RGB arrays, atomic output files, and padding an
image to a model's multiple.

Reading converts what tflic does not code natively, with a notice: grayscale
and palette images to RGB, alpha dropped, 16-bit reduced to 8 bits, CMYK and
other colour spaces to RGB, the first frame of an animation."""

import os
import tempfile

import numpy as np
import tensorflow as tf
from PIL import Image


class ImageError(ValueError):
  """An input that is not a readable image."""


_CONVERSIONS = {
    "L": "grayscale image converted to RGB",
    "1": "bilevel image converted to RGB",
    "P": "palette image converted to RGB",
    "LA": "grayscale image converted to RGB, alpha channel dropped",
    "PA": "palette image converted to RGB, alpha channel dropped",
    "RGBA": "alpha channel dropped (tflic codes RGB)",
    "RGBa": "alpha channel dropped (tflic codes RGB)",
    "CMYK": "CMYK image converted to RGB",
    "YCbCr": "YCbCr image converted to RGB",
    "LAB": "Lab image converted to RGB",
    "HSV": "HSV image converted to RGB",
}


def read_image(path):
  """Returns (uint8 array [H, W, 3], list of notices about conversions)."""
  notices = []
  try:
    with Image.open(path) as image:
      if getattr(image, "n_frames", 1) > 1:
        notices.append(f"{image.n_frames} frames: only the first is coded")
      image.load()
      mode = image.mode
      if mode.startswith("I") or mode == "F":  # 16/32-bit integer or float
        array = np.asarray(image).astype(np.float64)
        peak = 65535. if mode.startswith("I;16") or array.max() > 255 else 255.
        if mode == "F":
          peak = 1. if array.max() <= 1. else 255.
        array = np.round(np.clip(array / peak, 0., 1.) * 255.).astype(np.uint8)
        notices.append(f"{mode} image reduced to 8-bit RGB")
        return np.repeat(array[..., None], 3, axis=-1), notices
      if mode == "P" and "transparency" in image.info:
        image, mode = image.convert("RGBA"), "PA"
      if mode != "RGB":
        if mode not in _CONVERSIONS:
          raise ImageError(f"{path}: unsupported image mode {mode}")
        notices.append(_CONVERSIONS[mode])
        image = image.convert("RGB")
      array = np.asarray(image, dtype=np.uint8)
  except FileNotFoundError:
    raise
  except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
    if isinstance(e, ImageError):
      raise
    raise ImageError(f"{path}: not a readable image ({e})") from None
  return array, notices


def umask():
  """The process's file-creation mask."""
  mask = os.umask(0)
  os.umask(mask)
  return mask


def check_target(path, overwrite=False):
  """Refuses an output path that exists (unless overwrite)."""
  if os.path.exists(path) and not overwrite:
    raise FileExistsError(f"{path} exists (pass --overwrite to replace it)")


def atomic_write(path, write, overwrite=False):
  """Calls write(file object) on a temporary file beside `path`, then renames
  it to `path`: a failure leaves no partial output. Refuses to replace an
  existing file unless overwrite."""
  check_target(path, overwrite)
  directory = os.path.dirname(os.path.abspath(path))
  fd, tmp = tempfile.mkstemp(prefix=".tflic-", dir=directory)
  try:
    with os.fdopen(fd, "wb") as f:
      write(f)
    os.chmod(tmp, 0o666 & ~umask())  # mkstemp makes 0600; give what open() would
    os.replace(tmp, path)
  except BaseException:
    os.unlink(tmp)
    raise


def write_image(path, array, overwrite=False):
  """Writes uint8 RGB; the format follows the extension (PNG if none known)."""
  extension = os.path.splitext(path)[1].lower()
  image_format = Image.registered_extensions().get(extension, "PNG")
  atomic_write(path, lambda f: Image.fromarray(array).save(f, image_format),
               overwrite)


def write_bytes(path, data, overwrite=False):
  atomic_write(path, lambda f: f.write(data), overwrite)


def pad_to_multiple(image, multiple, mode="edge"):
  """Pads [H, W, C] on the bottom/right to sides that are multiples of
  `multiple`, by repeating the edge pixels ("edge") or mirroring the image
  about its last row/column ("reflect", without repeating it: ..., a, b, c, b,
  a, b, ...). Works for any size, 1×1 included, and any amount of padding;
  an image whose sides are multiples already is returned as is (no copy)."""
  if mode not in ("edge", "reflect"):
    raise ValueError(f"mode must be 'edge' or 'reflect', not {mode!r}")
  shape = tf.shape(image)
  padded = -(-shape[:2] // multiple) * multiple

  def indices(size, n):
    i = tf.range(size)
    if mode == "edge":
      return tf.minimum(i, n - 1)
    period = tf.maximum(2 * (n - 1), 1)  # n == 1: every index is 0
    r = i % period
    return tf.minimum(r, period - r)

  rows = indices(padded[0], shape[0])
  cols = indices(padded[1], shape[1])
  return tf.cond(tf.reduce_all(padded == shape[:2]), lambda: image,
                 lambda: tf.gather(tf.gather(image, rows, axis=0), cols, axis=1))
