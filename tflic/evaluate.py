"""Rate-distortion evaluation of exported learned codecs and classical codecs.

Every (setting, image) pair is coded to a real file and decoded: the rate is
8·bytes / (H·W) of the whole file, PSNR is on the RGB uint8 images, MS-SSIM is
TensorFlow's (`tflic.metrics`). A failed round trip (decoding raises, or the
decoded image is not uint8 of the original shape) becomes an error row and is
left out of every mean.

A setting is one point of a curve: one exported model (curve = the model's
export name, plus the distortion when not MSE; point = its λ), or one quality
of a classical codec (curve = the codec). Per-setting means are arithmetic
means over the images of the per-image values (so the mean MS-SSIM dB is the
mean of the per-image dB values). BD deltas (`metrics.bd_rate`, `bd_psnr`)
compare each curve's means, and published curves (`tflic.references`), with
an anchor curve.
"""

import collections
import csv
import dataclasses
import functools
import glob
import importlib.metadata
import io
import json
import logging
import math
import os
import sys
import time
import typing

import numpy as np
import PIL
from PIL import features

from tflic import classical
from tflic import data
from tflic import images
from tflic import metrics
from tflic import references as references_lib

# Per-image measures, and the per-setting means of them.
MEASURES = ("bpp", "psnr", "ms_ssim", "ms_ssim_db", "encode_seconds",
            "decode_seconds")
ROW_FIELDS = (("curve", "setting", "parameter", "image", "height", "width",
               "bytes") + MEASURES + ("error",))
MEAN_FIELDS = ("curve", "setting", "parameter", "images", "errors") + MEASURES
# The BD table: (column, BD function, quality measure).
BD_COLUMNS = (("bd_rate_psnr", metrics.bd_rate, "psnr"),
              ("bd_psnr", metrics.bd_psnr, "psnr"),
              ("bd_rate_ms_ssim_db", metrics.bd_rate, "ms_ssim_db"),
              ("bd_ms_ssim_db", metrics.bd_psnr, "ms_ssim_db"))
OUTPUTS = ("results.json", "results.csv", "means.csv", "rd.png", "bd.txt")
COMPRESSAI_DIR = "compressai"  # one results file per curve, in CompressAI's format


@dataclasses.dataclass
class Setting:
  """One point of a curve: how to code an image to bytes and back."""
  curve: str
  label: str
  parameter: float  # λ of a learned model, the setting of a classical codec
  encode: typing.Optional[typing.Callable]  # None until loaded (`load`)
  decode: typing.Optional[typing.Callable]
  source: str  # the SavedModel directory or the codec's description
  quality: typing.Optional[float] = None  # of a variable-rate model


# The qualities of a variable-rate model's curve (bin/evaluate --qualities).
MODEL_QUALITIES = (0., 20., 40., 60., 80., 100.)


# -- what is evaluated ------------------------------------------------------------
def model_dirs(spec):
  """(curve name or None, directory) of each SavedModel a `--models` spec names:
  comma-separated directories or globs, each optionally `CURVE=`-prefixed to
  name its curve instead of the export name (e.g. to compare two runs)."""
  found = []
  for entry in filter(None, (e.strip() for e in spec.split(","))):
    curve, pattern = None, entry
    if "=" in entry and not glob.glob(os.path.expanduser(entry)):
      curve, pattern = entry.split("=", 1)
    paths = sorted(glob.glob(os.path.expanduser(pattern)))
    paths = [p for p in paths if os.path.isfile(os.path.join(p, "saved_model.pb"))]
    if not paths:
      raise ValueError(f"no SavedModel matches {pattern!r}")
    found += [(curve or None, p) for p in paths]
  return found


def model_settings(spec, qualities=MODEL_QUALITIES):
  """The settings of the exported models of a `--models` spec, described from
  their export info (a variable-rate model: one per quality, its levels
  are one curve); `load` loads them."""
  from tflic import export  # pylint: disable=import-outside-toplevel
  settings = []
  for curve, path in model_dirs(spec):
    info = export.info(path)
    config = info.get("config", {})
    if curve is None:
      curve = info.get("name") or info.get("model") or os.path.basename(path)
      if config.get("distortion", "mse") != "mse":
        curve += f" ({config['distortion']})"
    if info.get("levels"):
      settings += [Setting(curve, f"{curve} q={q:g}", q, None, None,
                           os.path.abspath(path), q) for q in qualities]
      continue
    lmbda = float(config.get("lmbda", math.nan))
    settings.append(Setting(curve, f"{curve} λ={lmbda:g}", lmbda, None, None,
                            os.path.abspath(path)))
  labels = collections.Counter(s.label for s in settings)
  if duplicated := [label for label, n in labels.items() if n > 1]:
    raise ValueError(f"several models are {duplicated[0]!r}: give each run its "
                     "own curve with --models=NAME=DIR,OTHER=DIR")
  return settings


def load(setting):
  """The setting, with its SavedModel loaded and warmed up (one small image
  coded, so that no timing includes tracing) if it is a model's."""
  if setting.encode is not None:
    return setting
  model = _saved(setting.source)
  return dataclasses.replace(
      setting, encode=lambda image: model.encode(image, setting.quality),
      decode=model.decode)


@functools.lru_cache(maxsize=4)
def _saved(path):
  """A SavedModel, loaded once for all its settings, warmed up."""
  from tflic import codec as codec_lib  # pylint: disable=import-outside-toplevel
  model = codec_lib.SavedCodec(path)
  model.decode(model.encode(np.zeros([32, 32, 3], np.uint8)))
  return model


def codec_settings(names, qualities=None):
  """The settings of classical codecs: each codec's default sweep, or the
  values in `qualities[name]`."""
  qualities = qualities or {}
  if unused := set(qualities) - set(names):
    raise ValueError(f"settings given for {', '.join(sorted(unused))}, which "
                     "is not among the codecs evaluated")
  settings = []
  for name in dict.fromkeys(names):
    codec = classical.get(name)
    codec.require()  # a missing plugin is one message, before any work
    for q in dict.fromkeys(qualities.get(name) or codec.qualities):
      codec.options(q, (512, 512, 3))  # checks the value before any work
      settings.append(Setting(
          name, f"{name} {codec.setting}={q:g}", q,
          lambda image, q=q, codec=codec: codec.encode(image, q), codec.decode,
          f"Pillow {codec.format}, {codec.chroma}, {codec.setting}={q:g}"))
  return settings


def reference_curves(names):
  """{curve: (source, points)} of the published curves `names`
  (`tflic.references`: shipped names or CompressAI-format files)."""
  result = {}
  for name in dict.fromkeys(names):
    curve, source, points = references_lib.load(name)
    result[curve] = (source, points)
  return result


def check_anchor(settings, anchor, references=None):
  """The anchor curve: `anchor` (a measured or a reference curve), or the
  first measured curve if None; checked."""
  names = list(dict.fromkeys(s.curve for s in settings))
  if not names:
    raise ValueError("nothing to evaluate: give --models and/or --codecs")
  names += list(references or {})
  if anchor is None:
    return names[0]
  if anchor not in names:
    raise ValueError(f"anchor {anchor!r} is not a curve (curves: "
                     f"{', '.join(names)})")
  return anchor


def image_set(spec, limit=None):
  """(number of images or None, iterator of (name, uint8 [H, W, 3])) of a glob
  spec (sorted) or `tfds:NAME[:SPLIT]` (split `test` by default; read in
  order, once). At most `limit` images."""
  if not spec.startswith("tfds:"):
    files = data.image_files(spec)[:limit]

    def read():
      for path in files:
        image, notices = images.read_image(path)
        for notice in notices:
          print(f"notice: {path}: {notice}", file=sys.stderr)
        yield path, image
    return len(files), read()
  return _tfds_images(spec, limit)


def _tfds_images(spec, limit):
  import tensorflow_datasets as tfds  # pylint: disable=import-outside-toplevel
  name, _, split = spec[5:].partition(":")
  split = split or "test"
  ds, info = tfds.load(name, split=split, shuffle_files=False, with_info=True)
  if limit is not None:
    ds = ds.take(limit)
  try:
    count = info.splits[split].num_examples
    count = count if limit is None else min(count, limit)
  except (KeyError, ValueError, TypeError):
    count = None

  def read():
    for index, example in enumerate(tfds.as_numpy(ds)):
      image = example["image"]
      image = np.repeat(image, 3, -1) if image.shape[-1] == 1 else image[..., :3]
      filename = example.get("image/filename", b"")
      filename = filename.decode() if isinstance(filename, bytes) else filename
      yield filename or f"{name}/{split}/{index}", image.astype(np.uint8)
  return count, read()


# -- the measurements -------------------------------------------------------------
def measure(setting, name, image):
  """The row of one image coded at one setting."""
  height, width = image.shape[:2]
  row = dict(curve=setting.curve, setting=setting.label,
             parameter=setting.parameter, image=name, height=height,
             width=width, bytes=None, error=None, **dict.fromkeys(MEASURES))
  try:
    start = time.perf_counter()
    coded = setting.encode(image)
    row["encode_seconds"] = time.perf_counter() - start
    row["bytes"] = len(coded)
    start = time.perf_counter()
    decoded = np.asarray(setting.decode(coded))
    row["decode_seconds"] = time.perf_counter() - start
  except Exception as e:  # pylint: disable=broad-except  (reported, not averaged)
    row["error"] = f"{type(e).__name__}: {e}"
    return row
  if decoded.dtype != np.uint8 or decoded.shape != image.shape:
    row["error"] = (f"round trip failed: decoded {decoded.dtype} "
                    f"{decoded.shape}, original {image.shape}")
    return row
  ms_ssim = metrics.image_ms_ssim(image, decoded)
  row.update(bpp=metrics.bpp(len(coded), height, width),
             psnr=metrics.psnr(image, decoded), ms_ssim=ms_ssim,
             ms_ssim_db=metrics.ms_ssim_db(ms_ssim))
  return row


class Progress:
  """A one-line progress bar on stderr (a line per 10 % when not a terminal)."""

  def __init__(self, total, stream=sys.stderr):
    self.total, self.stream, self.done = total, stream, 0
    self.start = time.perf_counter()
    self.tty = stream.isatty()
    self.shown = -1

  def update(self, what):
    self.done += 1
    elapsed = time.perf_counter() - self.start
    if self.total:
      fraction = min(1., self.done / self.total)
      if not self.tty and int(10 * fraction) == self.shown:
        return
      self.shown = int(10 * fraction)
      bar = "#" * int(30 * fraction) + "." * (30 - int(30 * fraction))
      eta = elapsed / self.done * (self.total - self.done)
      text = (f"[{bar}] {self.done}/{self.total} {elapsed:.0f}s, "
              f"{eta:.0f}s left: {what}")
    else:
      text = f"{self.done} done, {elapsed:.0f}s: {what}"
    if self.tty:
      self.stream.write("\r\033[K" + text[:150])
    else:
      self.stream.write(text + "\n")
    self.stream.flush()

  def close(self):
    if self.tty:
      self.stream.write("\n")
      self.stream.flush()


def evaluate(settings, image_iter, total_images=None, progress=True):
  """Codes every image at every setting; returns the per-image rows. Images
  are read one at a time (outer loop), so large sets fit in memory."""
  settings = [load(s) for s in settings]
  total = total_images * len(settings) if total_images is not None else None
  bar = Progress(total) if progress else None
  rows = []
  for name, image in image_iter:
    for setting in settings:
      rows.append(measure(setting, name, image))
      if bar:
        bar.update(f"{setting.label}, {os.path.basename(name)}")
  if bar:
    bar.close()
  if not rows and settings:
    raise ValueError("no images to evaluate")
  return rows


def summarize(settings, rows):
  """Per-setting means over the images that round-tripped, in setting order."""
  by_setting = collections.defaultdict(list)
  for row in rows:
    by_setting[row["setting"]].append(row)
  means = []
  for s in settings:
    good = [r for r in by_setting[s.label] if r["error"] is None]
    mean = dict(curve=s.curve, setting=s.label, parameter=s.parameter,
                images=len(good), errors=len(by_setting[s.label]) - len(good))
    for key in MEASURES:
      mean[key] = float(np.mean([r[key] for r in good])) if good else None
    means.append(mean)
  return means


def curves(means, references=None):
  """{curve: its means that have values, ordered by bpp}, in first-seen order,
  then the reference curves' points."""
  result = {}
  for mean in means:
    points = result.setdefault(mean["curve"], [])
    if mean["images"]:
      points.append(mean)
  result = {c: sorted(p, key=lambda m: m["bpp"]) for c, p in result.items()}
  for curve, (_, points) in (references or {}).items():
    result[curve] = points
  return result


def bd_table(means, anchor, references=None):
  """A row per curve (measured, then published `references`) other than the
  anchor: its BD-rate and BD-quality against the anchor for PSNR and MS-SSIM
  dB; a delta that is not defined is None with the reason in `notes`."""
  all_curves = curves(means, references)
  if anchor not in all_curves:
    raise ValueError(f"anchor {anchor!r} is not a curve (curves: "
                     f"{', '.join(all_curves)})")
  base = all_curves[anchor]
  table = []
  for curve, points in all_curves.items():
    if curve == anchor:
      continue
    row = dict(curve=curve, anchor=anchor, notes=[])
    for key in ("bpp", "psnr", "ms_ssim_db"):  # the intervals BD averages over
      ranges = [[m[key] for m in c] for c in (base, points)
                if c and None not in (m[key] for m in c)]
      row[f"overlap_{key}"] = ([max(map(min, ranges)), min(map(max, ranges))]
                               if len(ranges) == 2 else None)
    for column, function, quality in BD_COLUMNS:
      try:
        if missing := [c for c, p in ((anchor, base), (curve, points))
                       if any(m[quality] is None for m in p)]:
          raise ValueError(f"no {quality} points published for {missing[0]}")
        row[column] = function([m["bpp"] for m in base], [m[quality] for m in base],
                               [m["bpp"] for m in points],
                               [m[quality] for m in points])
      except ValueError as e:
        row[column] = None
        if str(e) not in row["notes"]:
          row["notes"].append(str(e))
    table.append(row)
  return table


# -- outputs -----------------------------------------------------------------------
def versions():
  """The versions of the codec libraries, for the record."""
  result = dict(pillow=PIL.__version__)
  for key, feature in (("libjpeg", "jpg"), ("libwebp", "webp"),
                       ("openjpeg", "jpg_2000"), ("libavif", "avif")):
    try:
      result[key] = features.version(feature)
    except ValueError:
      result[key] = None
  for package in ("pillow-heif", "pillow-jxl-plugin"):  # the optional plugins
    try:
      result[package] = importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
      result[package] = None
  if result["pillow-heif"]:
    import pillow_heif  # pylint: disable=import-outside-toplevel
    result["x265"] = pillow_heif.libheif_info()["encoders"].get("x265")
  try:
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    result["tensorflow"] = tf.__version__
  except ImportError:
    pass
  return result


def _finite(value):
  """JSON has no inf/NaN: they are written as null."""
  if isinstance(value, float) and not math.isfinite(value):
    return None
  if isinstance(value, dict):
    return {k: _finite(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_finite(v) for v in value]
  if isinstance(value, np.generic):
    return _finite(value.item())
  return value


def to_json(report):
  return json.dumps(_finite(report), indent=1, ensure_ascii=False) + "\n"


def to_csv(dicts, fields):
  buffer = io.StringIO()
  writer = csv.DictWriter(buffer, fields, extrasaction="ignore",
                          lineterminator="\n")
  writer.writeheader()
  writer.writerows(dicts)
  return buffer.getvalue()


def _number(value, spec, unit=""):
  if value is None:
    return "n/a"
  return f"{value:{spec}}{unit}"


def means_text(means):
  """The per-setting means as an aligned text table."""
  width = max([len("setting")] + [len(m["setting"]) for m in means])
  lines = [f"{'setting':{width}} {'n':>3} {'err':>3} {'bpp':>7} {'PSNR':>6} "
           f"{'MS-SSIM':>7} {'dB':>6} {'enc s':>6} {'dec s':>6}"]
  for m in means:
    lines.append(
        f"{m['setting']:{width}} {m['images']:3d} {m['errors']:3d} "
        f"{_number(m['bpp'], '7.4f')} {_number(m['psnr'], '6.2f')} "
        f"{_number(m['ms_ssim'], '7.4f')} {_number(m['ms_ssim_db'], '6.2f')} "
        f"{_number(m['encode_seconds'], '6.3f')} "
        f"{_number(m['decode_seconds'], '6.3f')}")
  return "\n".join(lines) + "\n"


def bd_text(table, anchor):
  """The BD table as text."""
  width = max([24] + [len(row["curve"]) for row in table])
  lines = [f"Bjøntegaard deltas against {anchor} (PCHIP in log-rate, over the "
           "overlap; negative BD-rate = fewer bits)",
           f"{'curve':{width}} {'BD-rate PSNR':>12} {'BD-PSNR':>10} "
           f"{'BD-rate MS-SSIM':>15} {'BD-MS-SSIM dB':>13}"]
  for row in table:
    lines.append(
        f"{row['curve']:{width}} {_number(row['bd_rate_psnr'], '+.2f', ' %'):>12} "
        f"{_number(row['bd_psnr'], '+.3f', ' dB'):>10} "
        f"{_number(row['bd_rate_ms_ssim_db'], '+.2f', ' %'):>15} "
        f"{_number(row['bd_ms_ssim_db'], '+.3f', ' dB'):>13}")
    overlap = [f"{name} {row[f'overlap_{key}'][0]:{spec}}-"
               f"{row[f'overlap_{key}'][1]:{spec}}{unit}"
               for key, name, spec, unit in (
                   ("bpp", "bpp", ".3f", ""), ("psnr", "PSNR", ".2f", " dB"),
                   ("ms_ssim_db", "MS-SSIM", ".2f", " dB"))
               if row[f"overlap_{key}"]]
    if overlap:
      lines.append("  overlap: " + ", ".join(overlap))
    lines += [f"  n/a: {note}" for note in row["notes"]]
  if not table:
    lines.append("(only one curve)")
  return "\n".join(lines) + "\n"


def plot(means, title, anchor=None, references=None):
  """The rate-distortion plot (PSNR and MS-SSIM dB against bpp) as PNG bytes;
  published `references` dotted."""
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  logging.getLogger("matplotlib").setLevel(logging.WARNING)
  from matplotlib import pyplot as plt  # pylint: disable=import-outside-toplevel
  figure, axes = plt.subplots(1, 2, figsize=(13, 5.5))
  for curve, points in curves(means, references).items():
    pillow = curve in classical.CODECS
    published = curve in (references or {})
    label = curve + (f" {classical.CODECS[curve].chroma}" if pillow else "")
    label += " (published)" if published else ""
    label += " (anchor)" if curve == anchor else ""
    style = ":^" if published else "--o" if pillow else "-s"
    for axis, key in zip(axes, ("psnr", "ms_ssim_db")):
      shown = [m for m in points if m[key] is not None]
      if shown:
        axis.plot([m["bpp"] for m in shown], [m[key] for m in shown], style,
                  markersize=4, label=label)
  for axis, name in zip(axes, ("PSNR (dB)", "MS-SSIM (dB) = −10·log10(1 − MS-SSIM)")):
    axis.set_xlabel("bits per pixel")
    axis.set_ylabel(name)
    axis.grid(True, alpha=.3)
    axis.legend(fontsize="small")
  figure.suptitle(title)
  figure.tight_layout()
  buffer = io.BytesIO()
  figure.savefig(buffer, format="png", dpi=110)
  plt.close(figure)
  return buffer.getvalue()


def to_compressai(report):
  """{file name: JSON text}: each measured curve in CompressAI's results
  format (what `compressai.utils.plot` reads), its points ordered by bpp."""
  files = {}
  for curve, points in curves(report["means"]).items():
    if not points:
      continue
    source = next(s["source"] for s in report["settings"] if s["curve"] == curve)
    results = {key: [m[ours] for m in points] for key, ours in (
        ("bpp", "bpp"), ("psnr-rgb", "psnr"), ("ms-ssim-rgb", "ms_ssim"),
        ("encoding_time", "encode_seconds"),
        ("decoding_time", "decode_seconds"))}
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in curve)
    files[os.path.join(COMPRESSAI_DIR, name + ".json")] = to_json(dict(
        name=curve, description=f"tflic on {report['title']}: {source}",
        results=results))
  return files


def write_outputs(output_dir, report, overwrite=False, compressai=False):
  """Writes results.json, results.csv (per-image rows), means.csv, rd.png and
  bd.txt into output_dir (and compressai/CURVE.json if `compressai`), each
  atomically; returns their paths."""
  references = {r["curve"]: (r["source"], r["points"])
                for r in report["references"]}
  contents = {
      "results.json": to_json(report),
      "results.csv": to_csv(report["rows"], ROW_FIELDS),
      "means.csv": to_csv(report["means"], MEAN_FIELDS),
      "rd.png": plot(report["means"], report["title"], report["anchor"],
                     references),
      "bd.txt": bd_text(report["bd"], report["anchor"]),
  }
  if compressai:
    contents.update(to_compressai(report))
  paths = []
  for name, content in contents.items():
    path = os.path.join(output_dir, name)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    content = content.encode() if isinstance(content, str) else content
    images.write_bytes(path, content, overwrite)
    paths.append(path)
  return paths


def check_outputs(output_dir, overwrite=False, compressai=False):
  """Refuses, before any work, an output directory whose files exist."""
  for name in OUTPUTS:
    images.check_target(os.path.join(output_dir, name), overwrite)
  directory = os.path.join(output_dir, COMPRESSAI_DIR)
  if (compressai and not overwrite and os.path.isdir(directory)
      and os.listdir(directory)):
    raise ValueError(f"{directory} exists and is not empty (use --overwrite)")


def report(settings, rows, image_spec, anchor, references=None):
  """Everything written to results.json; `references` are published curves
  ({curve: (source, points)}, `reference_curves`)."""
  references = references or {}
  means = summarize(settings, rows)
  num_images = len({r["image"] for r in rows})
  return dict(
      title=f"{image_spec} ({num_images} images)", images=image_spec,
      num_images=num_images, anchor=anchor,
      averaging="per-setting means are arithmetic means of the per-image "
                "values over the images that round-tripped",
      bpp="8 * bytes of the whole coded file / (H * W)",
      settings=[dict(curve=s.curve, setting=s.label, parameter=s.parameter,
                     source=s.source) for s in settings],
      versions=versions(), means=means,
      references=[dict(curve=c, source=source, points=points)
                  for c, (source, points) in references.items()],
      bd=bd_table(means, anchor, references),
      errors=[r for r in rows if r["error"] is not None], rows=rows)
