"""Measurements of trained models: the file size against the model's own rate
estimate, and encode/decode seconds (medians, after one warm-up image)."""

import statistics
import time

import numpy as np
import tensorflow as tf

from tflic import codec as codec_lib
from tflic import metrics


def _timed(fn):
  start = time.perf_counter()
  result = fn()
  return result, time.perf_counter() - start


def measure(model, images, progress=None):
  """Codes every image with `model` (a trained CompressionModel); returns a
  dict of means/medians over the images."""
  codec = codec_lib.Codec(model)
  codec.decode(codec.encode(images[0])["bitstream_bytes"])  # trace (warm-up)
  header = 22 + 4 * model.num_streams + 8
  rows = []
  for i, image in enumerate(images):
    data, encode_s = _timed(lambda: codec.encode(image)["bitstream_bytes"])
    decoded, decode_s = _timed(lambda: codec.decode(data)["image"].numpy())
    data = data.numpy()
    x = tf.cast(codec_lib.pad_to_multiple(image, model.multiple, model.pad_mode),
                tf.float32)
    estimate = float(model.estimate_bits(x[None] / 255.)) / 8.
    height, width = image.shape[:2]
    rows.append(dict(
        bpp=metrics.bpp(len(data), height, width),
        psnr=metrics.psnr(image, decoded),
        ms_ssim=metrics.image_ms_ssim(image, decoded),
        payload=len(data) - header, estimate=estimate,
        encode_s=encode_s, decode_s=decode_s))
    if progress:
      progress(i + 1, len(images))
  payload = sum(r["payload"] for r in rows)
  estimate = sum(r["estimate"] for r in rows)
  return dict(
      images=len(rows),
      bpp=float(np.mean([r["bpp"] for r in rows])),
      psnr=float(np.mean([r["psnr"] for r in rows])),
      ms_ssim=float(np.mean([r["ms_ssim"] for r in rows])),
      overhead_percent=100. * (payload - estimate) / estimate,
      header_bytes=header,
      encode_s=statistics.median(r["encode_s"] for r in rows),
      decode_s=statistics.median(r["decode_s"] for r in rows))


COLUMNS = [("images", "{:d}"), ("bpp", "{:.4f}"), ("psnr", "{:.2f}"),
           ("ms_ssim", "{:.4f}"), ("overhead_percent", "{:+.3f}"),
           ("header_bytes", "{:d}"), ("encode_s", "{:.3f}"), ("decode_s", "{:.3f}")]


def table(results):
  """results: {label: measure(...)} → a text table."""
  width = max(len(label) for label in results) + 2
  lines = ["model".ljust(width) + "  ".join(f"{c:>16}" for c, _ in COLUMNS)]
  for label, r in results.items():
    lines.append(label.ljust(width) + "  ".join(
        f"{f.format(r[c]):>16}" for c, f in COLUMNS))
  return "\n".join(lines)
