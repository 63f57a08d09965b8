"""Published rate-distortion curves on Kodak, to draw beside measured ones.

Each curve is a JSON file of this package in CompressAI's results format
(`{"name", "description", "results": {"bpp": [...], "psnr-rgb": [...],
"ms-ssim-rgb": [...]}}`) with the address it was copied from in `source`:
the papers' own points where the authors published them as data (Ballé 2018,
Minnen 2018, SLIMD), CompressAI's results for its zoo, BPG and VTM. Cheng
2020's and Qian 2021's own points are only in their papers' figures, so they
are not here (CompressAI's retrained cheng2020-attn is). Any file of that
format is accepted by path too.
"""

import glob
import json
import os

from tflic import metrics

DIRECTORY = os.path.dirname(__file__)
# Keys of CompressAI's format (old files say "psnr" / "ms-ssim") → ours.
_KEYS = {"bpp": ("bpp",), "psnr": ("psnr-rgb", "psnr"),
         "ms_ssim": ("ms-ssim-rgb", "ms-ssim")}


def names():
  """The names of the curves shipped with tflic."""
  return sorted(os.path.basename(p)[:-5]
                for p in glob.glob(os.path.join(DIRECTORY, "*.json")))


def load(name):
  """(curve name, source, points) of a shipped curve or a CompressAI-format
  file: points are dicts of bpp, psnr, ms_ssim and ms_ssim_db (None where
  the source has no such value), ordered by bpp."""
  path = name if name.endswith(".json") else os.path.join(DIRECTORY,
                                                          name + ".json")
  try:
    with open(path, encoding="utf-8") as f:
      content = json.load(f)
  except FileNotFoundError:
    raise ValueError(f"unknown reference curve {name!r} (known: "
                     f"{', '.join(names())}, or a CompressAI results "
                     "file)") from None
  except (OSError, json.JSONDecodeError) as e:
    raise ValueError(f"reference curve {name!r}: {e}") from None
  results = content.get("results", {}) if isinstance(content, dict) else {}
  columns = {}
  for ours, theirs in _KEYS.items():
    found = [results[k] for k in theirs if k in results]
    columns[ours] = found[0] if found else None
  if columns["bpp"] is None or columns["psnr"] is None:
    raise ValueError(f"reference curve {name!r}: needs results.bpp and "
                     "results.psnr-rgb (CompressAI's format)")
  points = []
  for i, bpp in enumerate(columns["bpp"]):
    ms_ssim = columns["ms_ssim"][i] if columns["ms_ssim"] else None
    points.append(dict(
        bpp=float(bpp), psnr=float(columns["psnr"][i]),
        ms_ssim=ms_ssim,
        ms_ssim_db=None if ms_ssim is None else metrics.ms_ssim_db(ms_ssim)))
  curve = content.get("name") or os.path.basename(path)[:-5]
  source = content.get("source") or os.path.abspath(path)
  return curve, source, sorted(points, key=lambda p: p["bpp"])
