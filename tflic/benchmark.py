"""Measurements of models: the file size against the model's own rate
estimate, the share of the first stream (the side information: ẑ, or
SLIMD's indices and distributions), encode/decode seconds (medians, after
one warm-up image) and, for context models, the cost of the serial coding
loop per latent position; training seconds per step in each precision."""

import os
import statistics
import subprocess
import sys
import tempfile
import time
import zlib

import numpy as np
import tensorflow as tf
import tensorflow_compression as tfc

from tflic import bitstream
from tflic import codec as codec_lib
from tflic import data
from tflic import evaluate
from tflic import export
from tflic import images as images_lib
from tflic import models
from tflic import precision
from tflic import slimd_fit
from tflic import tiling
from tflic import train


def parse_spec(spec):
  """'NAME[:key=value...]' → a model with fresh (untrained) weights, e.g.
  'cheng2020:num_filters=128:mixture_components=3'."""
  return train.build(*split_spec(spec))


def split_spec(spec):
  """'NAME[:key=value...]' → (name, {key: value})."""
  name, *pairs = spec.split(":")
  args = {}
  for pair in pairs:
    key, sep, value = pair.partition("=")
    if not sep:
      raise ValueError(f"{spec!r}: expected key=value, not {pair!r}")
    if value.lower() in ("true", "false"):
      args[key] = value.lower() == "true"
    else:
      args[key] = int(value) if value.lstrip("-").isdigit() else value
  if name not in models.names():
    raise ValueError(f"{spec!r}: unknown model {name!r} "
                     f"(one of {', '.join(models.names())})")
  return name, args


def training_speed(spec, precisions, train_data="samples", patch_size=256,
                   batch_size=8, steps=10, repeats=3, progress=None):
  """{precision: [seconds per training step of each repeat]} of a fresh
  model of `spec` (as `bin/train` trains it: Adam, gradients clipped), one
  model per precision, timed in turns (`repeats` rounds of `steps` steps
  of each, after 3 steps that trace), so that a machine's changing speed
  hits every precision alike."""
  name, args = split_spec(spec)
  functions = {}
  for precision_ in map(precision.resolve, precisions):
    model = train.build(name, args, precision_=precision_)
    train.compile_adam(model)
    batches = iter(data.patches(train_data, patch_size, batch_size))
    step = model.make_train_function()
    for _ in range(3):
      float(step(batches)["loss"])
    functions[precision_] = (model, batches, step)
  seconds = {precision_: [] for precision_ in functions}
  for repeat in range(repeats):
    for precision_, (_, batches, step) in functions.items():
      if progress:
        progress(f"{spec} {precision_}: round {repeat + 1}/{repeats}")
      start = time.perf_counter()
      for _ in range(steps):
        logs = step(batches)
      float(logs["loss"])  # waits for the last step
      seconds[precision_].append((time.perf_counter() - start) / steps)
  return seconds


def speed_table(results):
  """{spec: training_speed(...)} → a text table: median seconds per step,
  steps/s, and the speed-up over the first precision."""
  width = max(len(spec) for spec in results) + 2
  lines = [f"{'model':<{width}}{'precision':<16}{'s/step':>8}{'steps/s':>9}"
           f"{'speed-up':>10}  (s/step of each round)"]
  for spec, seconds in results.items():
    first = None
    for precision_, values in seconds.items():
      median = float(np.median(values))
      first = first or median
      lines.append(
          f"{spec:<{width}}{precision_:<16}{median:>8.3f}{1 / median:>9.2f}"
          f"{first / median:>9.2f}×  "
          + " ".join(f"{v:.3f}" for v in values))
  return "\n".join(lines)


def loop_seconds(codec, image):
  """Seconds of the entropy decoding alone (the latents from the streams,
  no synthesis) of a frozen codec's model on `image`, and the number of
  latent positions; (None, None) unless its latent codec decodes position
  by position (`LatentCodec.serial`)."""
  model = codec.model
  if not model.latent_codec.serial:
    return None, None
  x = images_lib.pad_to_multiple(image, model.multiple, model.pad_mode)
  streams, _ = tf.function(model.encode_latents, autograph=False)(
      tf.cast(x, tf.float32)[None] / 255.)
  decode = tf.function(model.decode_latents, autograph=False)
  decode(streams, x.shape[0], x.shape[1])  # trace
  start = time.perf_counter()
  decoded = decode(streams, x.shape[0], x.shape[1])["y_hat"]
  seconds = time.perf_counter() - start
  return seconds, int(decoded.shape[1] * decoded.shape[2])


def measure(model, images, progress=None, calibration=None):
  """Codes every image with `model` through `evaluate.measure`; adds the
  payload against the model's own estimate and the serial loop's cost.
  Returns means (rate, quality, overhead) and median seconds. `calibration`:
  see `codec.Codec`."""
  codec = codec_lib.Codec(model, calibration)
  model = codec.model  # the frozen copy the codec codes with
  streams = []  # the stream lengths of each file

  def encode(image):
    data = codec.encode(image)["bitstream_bytes"].numpy()
    streams.append(bitstream.stream_lengths(data))
    return data

  setting = evaluate.Setting(
      "model", "model", model.lmbda, encode,
      lambda data: codec.decode(data)["image"].numpy(), "in-process")
  setting.decode(setting.encode(images[0]))  # trace (warm-up)
  del streams[:]
  latent_codec = codec.model.latent_codec
  header = bitstream.header_bytes(model.num_streams)
  rows, payload, estimate, stages = [], 0, 0., []
  for i, image in enumerate(images):
    row = evaluate.measure(setting, str(i), image)
    if row["error"]:
      raise RuntimeError(f"image {i}: {row['error']}")
    rows.append(row)
    payload += row["bytes"] - header
    x = tf.cast(images_lib.pad_to_multiple(image, model.multiple,
                                           model.pad_mode), tf.float32)
    estimate += float(model.estimate_bits(x[None] / 255.)) / 8.
    stage_bits = model.measures(x[None] / 255.).get("stage_bits")
    if stage_bits:
      stages.append([None if b is None else
                     float(b) / image.shape[0] / image.shape[1]
                     for b in stage_bits])
    if progress:
      progress(i + 1, len(images))
  seconds, positions = loop_seconds(codec, images[0])
  mean = lambda key: float(np.mean([r[key] for r in rows]))
  median = lambda key: statistics.median(r[key] for r in rows)
  # SLIMD codes with other models than the prior the estimate is of.
  slimd = model.slimd is not None
  # The streams before ŷ's: a variable-rate model's quality, ẑ's, SLIMD's
  # side information.
  side = model.num_streams - latent_codec.num_streams + latent_codec.side_streams
  return dict(
      images=len(rows), bpp=mean("bpp"), psnr=mean("psnr"),
      ms_ssim=mean("ms_ssim"),
      overhead_percent=None if slimd else 100. * (payload - estimate) / estimate,
      side_percent=100. * sum(sum(s[:side]) for s in streams) / payload
      if side else None,
      header_bytes=header, encode_s=median("encode_seconds"),
      decode_s=median("decode_seconds"), positions=positions,
      loop_s=seconds,
      ms_per_position=seconds and 1e3 * seconds / positions,
      stage_bpp=stages and [None if s[0] is None else float(np.mean(s))
                            for s in zip(*stages)])


def slimd_side_information(model, images):
  """SLIMD's side information per image (means): the tile indices as the
  range coder writes them (spatial context and learned priors) against
  DEFLATE (zlib level 9) of the same indices as bytes (the paper's coding),
  and the number of image-dependent distributions sent."""
  model = model.clone()
  model.latent_codec.factorized_codec.freeze()
  coder, rows = model.slimd, []
  for image in images:
    counts, columns = slimd_fit.tile_counts(model, image, coder.tile,
                                            coder.radius)
    indices, sent, _ = coder.choose(counts)
    coded = tfc.entropy_encode_finalize(coder._encode_indices(  # pylint: disable=protected-access
        tfc.create_range_encoder([], coder.side_table), indices, columns))
    rows.append((8 * len(coded.numpy()), 8 * len(zlib.compress(
        indices.numpy().astype(np.uint8).tobytes(), 9)),
                 int(sent.numpy().sum())))
  coded, deflate, sent = np.mean(rows, 0)
  return (f"SLIMD side information per image: tile indices {coded:.0f} bits "
          f"coded, {deflate:.0f} bits DEFLATEd; {sent:.1f} image-dependent "
          "distributions sent")


def stage_line(label, result):
  """The bpp of ŷ under each stage of a staged entropy model (qian2021)."""
  names = ("context", "+ reference", "+ hyperprior")
  return f"{label}: bpp of ŷ by stage: " + ", ".join(
      f"{n} {b:.4f}" for n, b in zip(names, result["stage_bpp"]) if b is not None)


COLUMNS = [("images", "{:d}"), ("bpp", "{:.4f}"), ("psnr", "{:.2f}"),
           ("ms_ssim", "{:.4f}"), ("overhead_percent", "{:+.3f}"),
           ("side_percent", "{:.2f}"),
           ("header_bytes", "{:d}"), ("encode_s", "{:.3f}"),
           ("decode_s", "{:.3f}"), ("positions", "{:d}"), ("loop_s", "{:.3f}"),
           ("ms_per_position", "{:.3f}")]


def table(results):
  """results: {label: measure(...)} → a text table (− where not applicable)."""
  width = max(len(label) for label in results) + 2
  cell = lambda value, f: "−" if value is None else f.format(value)
  lines = ["model".ljust(width) + "  ".join(f"{c:>14}" for c, _ in COLUMNS)]
  for label, r in results.items():
    lines.append(label.ljust(width) + "  ".join(
        f"{cell(r[c], f):>14}" for c, f in COLUMNS))
  return "\n".join(lines)


def growth(label, sized):
  """sized: [(pixels, measure(...))] → a line: how the seconds grow with the
  area from the smallest size to each larger one."""
  sized = sorted(sized, key=lambda s: s[0])
  (area, base), parts = sized[0], []
  for pixels, r in sized[1:]:
    ratios = [f"{key[:-2]} ×{r[key] / base[key]:.2f}"
              for key in ("encode_s", "decode_s", "loop_s") if base[key]]
    parts.append(f"area ×{pixels / area:.2f}: " + ", ".join(ratios))
  return f"{label}: " + "; ".join(parts)


# A fresh process's own peak RSS (Python expression): VmHWM. Not ru_maxrss,
# into which Linux carries the forking parent's RSS across exec.
PEAK_RSS = ("int(next(line for line in open('/proc/self/status') "
            "if line.startswith('VmHWM')).split()[1]) * 1024")

_CODE_ONCE = """
import sys, time
import numpy as np
from tflic import codec
start = time.perf_counter()
saved = codec.SavedCodec(sys.argv[1])
loaded = time.perf_counter() - start
operation, path = sys.argv[2], sys.argv[3]
try:
  if operation == "load":  # the runtime alone: TensorFlow and the SavedModel
    seconds = loaded
  elif operation == "encode":
    image = np.load(path)
    start = time.perf_counter()
    data = saved.encode(image)
    seconds = time.perf_counter() - start
    with open(path + ".tfl", "wb") as f:
      f.write(data)
  else:
    with open(path + ".tfl", "rb") as f:
      data = f.read()
    start = time.perf_counter()
    saved.decode(data)
    seconds = time.perf_counter() - start
except Exception as e:  # one line for the table: TF's assertion, if any
  lines = str(e).strip().splitlines() or [type(e).__name__]
  sys.exit(([l for l in lines if "assertion failed" in l] + lines)[0].strip())
print(seconds, """ + PEAK_RSS + """)
"""


def _code_once(path, operation, image_path):
  """(seconds, peak RSS bytes) of one operation in a fresh process, or the
  error's line (str) where it failed."""
  result = subprocess.run(
      [sys.executable, "-c", _CODE_ONCE, path, operation, image_path],
      capture_output=True, text=True, check=False)
  if result.returncode:
    return (result.stderr.strip().splitlines() or
            [f"exit status {result.returncode}"])[-1]
  seconds, peak = result.stdout.split()[-2:]
  return float(seconds), int(peak)


def peak_memory(model, images, memory_budget, progress=None):
  """Exports `model` with `memory_budget` and codes each image (uint8
  arrays) once in a fresh process per operation: [{pixels, encode_s,
  encode_bytes, decode_s, decode_bytes, load_s, runtime_bytes}] (seconds of
  the call; peak RSS of the whole process, or None and the error where it
  failed, e.g. killed for lack of memory; load_s and runtime_bytes: the
  seconds of loading the SavedModel and the peak of a process that only
  loads it, measured once, which vary with the machine's TensorFlow build
  and CPU)."""
  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    path = export.export(model, os.path.join(tmp, "model"),
                         memory_budget=memory_budget)
    image_path = os.path.join(tmp, "image.npy")
    if progress:
      progress("runtime alone (load only)")
    runtime = _code_once(path, "load", image_path)
    if isinstance(runtime, str):
      raise RuntimeError(f"loading the SavedModel failed: {runtime}")
    for image in images:
      row = dict(pixels=image.shape[0] * image.shape[1], error=None,
                 encode_s=None, encode_bytes=None, decode_s=None,
                 decode_bytes=None, load_s=runtime[0],
                 runtime_bytes=runtime[1])
      np.save(image_path, image)
      for operation in ("encode", "decode"):
        if progress:
          progress(f"{image.shape[1]}x{image.shape[0]} {operation}")
        result = _code_once(path, operation, image_path)
        if isinstance(result, str):
          row["error"] = result
          break
        row[operation + "_s"], row[operation + "_bytes"] = result
      rows.append(row)
  return rows


def memory_table(results):
  """{label: peak_memory(...)} → a text table; per label, the runtime's own
  peak (against the budget's reserve, tiling.RESERVE) and the growth of the
  seconds per megapixel from the smallest to the largest size."""
  cell = lambda v, f: "−" if v is None else f.format(v)
  width = max(len(label) for label in results) + 2
  lines = [f"{'model':<{width}}{'MP':>7}{'encode s':>10}{'encode GB':>11}"
           f"{'decode s':>10}{'decode GB':>11}  error"]
  for label, rows in results.items():
    for r in rows:
      gb = lambda v: None if v is None else v / 2 ** 30
      lines.append(
          f"{label:<{width}}{r['pixels'] / 1e6:>7.2f}"
          f"{cell(r['encode_s'], '{:.2f}'):>10}"
          f"{cell(gb(r['encode_bytes']), '{:.2f}'):>11}"
          f"{cell(r['decode_s'], '{:.2f}'):>10}"
          f"{cell(gb(r['decode_bytes']), '{:.2f}'):>11}  {r['error'] or ''}")
    if rows:
      runtime = rows[0]["runtime_bytes"]
      lines.append(
          f"{label}: the runtime alone (TensorFlow and the SavedModel, no "
          f"image) peaks at {runtime / 2 ** 30:.2f} GB and loads in "
          f"{rows[0]['load_s']:.1f} s" +
          (f", more than the budget's {tiling.RESERVE / 2 ** 30:.0f} GB reserve "
           "on this machine: lower peaks need a larger --memory_budget"
           if runtime > tiling.RESERVE else ""))
    done = [r for r in rows if r["decode_s"] is not None]
    if len(done) > 1:
      first, last = done[0], done[-1]
      per = lambda r, k: r[k] / (r["pixels"] / 1e6)
      lines.append(f"{label}: seconds per MP from {first['pixels'] / 1e6:.1f} to "
                   f"{last['pixels'] / 1e6:.1f} MP: encode "
                   f"{per(first, 'encode_s'):.2f} → {per(last, 'encode_s'):.2f}, "
                   f"decode {per(first, 'decode_s'):.2f} → "
                   f"{per(last, 'decode_s'):.2f}")
  return "\n".join(lines)
