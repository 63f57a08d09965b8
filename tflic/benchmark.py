"""Measurements of trained models: the file size against the model's own rate
estimate, and encode/decode seconds (medians, after one warm-up image)."""

import statistics

import numpy as np
import tensorflow as tf

from tflic import codec as codec_lib
from tflic import evaluate


def measure(model, images, progress=None):
  """Codes every image with `model` (a trained CompressionModel) through
  `evaluate.measure`; adds the payload against the model's own estimate.
  Returns means (rate, quality, overhead) and median seconds."""
  codec = codec_lib.Codec(model)
  setting = evaluate.Setting(
      "model", "model", model.lmbda,
      lambda image: codec.encode(image)["bitstream_bytes"].numpy(),
      lambda data: codec.decode(data)["image"].numpy(), "in-process")
  setting.decode(setting.encode(images[0]))  # trace (warm-up)
  header = 22 + 4 * model.num_streams + 8
  rows, payload, estimate = [], 0, 0.
  for i, image in enumerate(images):
    row = evaluate.measure(setting, str(i), image)
    if row["error"]:
      raise RuntimeError(f"image {i}: {row['error']}")
    rows.append(row)
    payload += row["bytes"] - header
    x = tf.cast(codec_lib.pad_to_multiple(image, model.multiple, model.pad_mode),
                tf.float32)
    estimate += float(model.estimate_bits(x[None] / 255.)) / 8.
    if progress:
      progress(i + 1, len(images))
  mean = lambda key: float(np.mean([r[key] for r in rows]))
  median = lambda key: statistics.median(r[key] for r in rows)
  return dict(
      images=len(rows), bpp=mean("bpp"), psnr=mean("psnr"),
      ms_ssim=mean("ms_ssim"),
      overhead_percent=100. * (payload - estimate) / estimate,
      header_bytes=header, encode_s=median("encode_seconds"),
      decode_s=median("decode_seconds"))


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
