"""The demo: a photo coded with the shipped model at three qualities and
with JPEG 4:4:4 (optimized Huffman tables) at the same file sizes: a table
of bytes, bpp, PSNR and MS-SSIM, and a side-by-side picture (the whole
image and a crop zoomed 2×, labelled) a person can look at."""

import numpy as np
from PIL import Image, ImageDraw

from tflic import classical
from tflic import metrics

QUALITIES = (10., 50., 90.)
CROP = 128  # the zoomed crop's side, in pixels of the image
LABEL = 16  # the labels' band, in pixels


def jpeg_within(image, size):
  """JPEG 4:4:4's largest file of at most `size` bytes (its quality by
  bisection; its smallest, quality 1, if none fits) → (bytes, quality)."""
  jpeg = classical.get("jpeg")
  low, high, best = 1, 100, None
  while low <= high:
    quality = (low + high) // 2
    data = jpeg.encode(image, quality)
    if len(data) <= size:
      best, low = (data, quality), quality + 1
    else:
      high = quality - 1
  return best or (jpeg.encode(image, 1), 1)


def figures(image, data, decoded):
  height, width = image.shape[:2]
  return dict(bytes=len(data), bpp=metrics.bpp(len(data), height, width),
              psnr=float(metrics.psnr(image, decoded)),
              ms_ssim=float(metrics.image_ms_ssim(image, decoded)))


def compare(codec, image, qualities=QUALITIES):
  """Codes `image` with `codec` (a variable-rate `codec.SavedCodec`) at
  each quality and with JPEG at the same size → rows [(quality, tflic
  figures, decoded, JPEG quality, JPEG figures, decoded)]."""
  rows = []
  for quality in qualities:
    data = codec.encode(image, quality)
    decoded = codec.decode(data)
    jpeg, jpeg_quality = jpeg_within(image, len(data))
    jpeg_decoded = classical.decode(jpeg)
    rows.append((quality, figures(image, data, decoded), decoded,
                 jpeg_quality, figures(image, jpeg, jpeg_decoded),
                 jpeg_decoded))
  return rows


def table(rows):
  lines = [f"{'':>16}{'bytes':>8}{'bpp':>8}{'PSNR dB':>9}{'MS-SSIM':>9}"]
  for quality, ours, _, jpeg_quality, jpeg, _ in rows:
    for label, f in ((f"tflic q={quality:g}", ours),
                     (f"JPEG q={jpeg_quality}", jpeg)):
      lines.append(f"{label:>16}{f['bytes']:>8}{f['bpp']:>8.3f}"
                   f"{f['psnr']:>9.2f}{f['ms_ssim']:>9.4f}")
  return "\n".join(lines)


def _labelled(image, text):
  canvas = Image.new("RGB", (image.width, image.height + LABEL), "white")
  canvas.paste(image, (0, LABEL))
  ImageDraw.Draw(canvas).text((2, 2), text, fill="black")
  return canvas


def picture(image, rows, crop=None):
  """The comparison as one image: per quality a row of [tflic, JPEG]
  whole, then the same crop of each zoomed 2× (`crop`: its top-left corner,
  default the centre)."""
  height, width = image.shape[:2]
  side = min(CROP, height, width)
  top, left = crop or ((height - side) // 2, (width - side) // 2)
  zoom = lambda a: Image.fromarray(a[top:top + side, left:left + side]).resize(
      (2 * side, 2 * side), Image.NEAREST)
  tiles = [[_labelled(Image.fromarray(image), "original"),
            _labelled(zoom(image), "original, crop ×2")]]
  for quality, ours, decoded, jpeg_quality, jpeg, jpeg_decoded in rows:
    caption = lambda name, f: (f"{name}: {f['bpp']:.3f} bpp, "
                               f"{f['psnr']:.2f} dB")
    tiles.append([
        _labelled(Image.fromarray(decoded), caption(f"tflic q={quality:g}",
                                                    ours)),
        _labelled(Image.fromarray(jpeg_decoded),
                  caption(f"JPEG 4:4:4 q={jpeg_quality}", jpeg)),
        _labelled(zoom(decoded), "tflic, crop ×2"),
        _labelled(zoom(jpeg_decoded), "JPEG, crop ×2")])
  cell_w = max(t.width for row in tiles for t in row)
  cell_h = max(t.height for row in tiles for t in row)
  columns = max(len(row) for row in tiles)
  sheet = Image.new("RGB", (columns * cell_w, len(tiles) * cell_h), "white")
  for r, row in enumerate(tiles):
    for c, tile in enumerate(row):
      sheet.paste(tile, (c * cell_w, r * cell_h))
  return sheet
