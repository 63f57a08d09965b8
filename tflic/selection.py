"""Model selection for a target bit rate (Wen et al. 2019, §3 and Table 5).

The paper meets CLIC's rate limit by coding each image with several models
(one family at several λ) and keeping, per image, a stream that fits. Two
rules:
  - `best_fitting`: one image, a size limit: the highest-quality stream of
    at most `limit` bytes (the smallest one if none fits); with a single
    variable-rate model, `fit_quality` finds the quality by bisection;
  - `allocate`: a set of images, one model per image. By default the CLIC
    rule (`budget="pixels"`): the set's total bytes are at most
    B · Σ pixels / 8, and PSNR is scored from the set's total squared error
    (`set_score`), so the choice minimizes that error; `budget="mean_bpp"`
    limits the mean of the images' bpp instead and maximizes the mean
    quality. The paper does not say how to choose; this solves the
    multiple-choice knapsack exactly up to a grid of 2^16 steps of the
    limit (dynamic programming; costs rounded up, so the limit always
    holds), and keeps a single model for all images if that is as good.

A stream names its model (the container's model id, `bitstream.py`), so the
decoder finds the model among several (`model_for`).
"""

import dataclasses
import math

import numpy as np

from tflic import bitstream
from tflic import export
from tflic import metrics
from tflic.layers import gain_units

METRICS = {"psnr": metrics.psnr, "ms_ssim": metrics.image_ms_ssim}


BUDGETS = ("pixels", "mean_bpp")


@dataclasses.dataclass(frozen=True)
class Candidate:
  """One model's coding of one image: its stream, the image's pixels, its
  measured quality and squared error (summed over pixels and channels, on
  the 0..255 scale)."""
  model: str
  data: bytes
  pixels: int
  quality: float
  squared_error: float = 0.

  @property
  def bpp(self):
    return 8 * len(self.data) / self.pixels


def settings(models, qualities):
  """{name: (SavedCodec, quality)}: each model, and each variable-rate one at
  each of `qualities` (named "DIR q=Q")."""
  result = {}
  for name, model in models.items():
    if model.variable_rate:
      result.update({f"{name} q={q:g}": (model, q) for q in qualities})
    else:
      result[name] = (model, None)
  return result


def code_with_each(image, models, metric="psnr"):
  """Codes `image` (uint8 [H, W, 3]) with each of `models` ({name:
  SavedCodec, or (SavedCodec, quality): `settings`}) and decodes each
  stream to measure its `metric` (a key of METRICS). → [Candidate]."""
  result = []
  for name, model in models.items():
    model, quality = model if isinstance(model, tuple) else (model, None)
    data = model.encode(image, quality)
    decoded = model.decode(data)
    error = np.sum(np.square(image.astype(np.float64) - decoded))
    result.append(Candidate(name, data, image.shape[0] * image.shape[1],
                            float(METRICS[metric](image, decoded)),
                            float(error)))
  return result


def set_rate(chosen, budget="pixels"):
  """The set's bits over its pixels (what CLIC's limit is on), or the mean
  of the images' bpp."""
  if budget == "pixels":
    return 8 * sum(len(c.data) for c in chosen) / sum(c.pixels for c in chosen)
  return sum(c.bpp for c in chosen) / len(chosen)


def set_score(chosen, metric="psnr", budget="pixels"):
  """The set's quality: PSNR of its total squared error (CLIC), or the mean
  of the images' metric (another metric, or the mean_bpp budget)."""
  if metric == "psnr" and budget == "pixels":
    mse = sum(c.squared_error for c in chosen) / (
        3 * sum(c.pixels for c in chosen))
    return float(metrics.psnr_from_mse(mse)) if mse > 0 else math.inf
  return sum(c.quality for c in chosen) / len(chosen)


def best_fitting(candidates, limit):
  """(the best candidate of at most `limit` bytes, whether one fits): the
  highest quality among those that fit, else the smallest."""
  fitting = [c for c in candidates if len(c.data) <= limit]
  if fitting:
    return max(fitting, key=lambda c: (c.quality, -len(c.data))), True
  return min(candidates, key=lambda c: len(c.data)), False


def fit_quality(codec, image, limit, steps=12):
  """A variable-rate model's (`codec.SavedCodec`) largest stream of at most
  `limit` bytes: bisection over the quality (0 … 100, rate increasing with
  it, as tfc's tfci finds the λ of separate models). → (stream, quality,
  whether it fits; if not even the lowest quality fits, its stream)."""
  low, high = gain_units.QUALITY_RANGE
  best = (codec.encode(image, low), low)
  if len(best[0]) > limit:
    return best[0], low, False
  top = codec.encode(image, high)
  if len(top) <= limit:
    return top, high, True
  for _ in range(steps):
    middle = (low + high) / 2
    data = codec.encode(image, middle)
    if len(data) <= limit:
      low = middle
      if len(data) >= len(best[0]):
        best = (data, middle)
    else:
      high = middle
  return best[0], best[1], True


GRID = 1 << 16  # steps of the summed rate in the allocation's knapsack


def allocate(options, target_bpp, budget="pixels", metric="psnr"):
  """options: per image, its candidates (one per model). → (the chosen
  candidate per image, whether the budget is met): the best `set_score`
  within the budget (see the module docstring; `_knapsack`), else each
  image's smallest stream."""
  if budget not in BUDGETS:
    raise ValueError(f"budget must be one of {BUDGETS}, not {budget!r}")
  if any(not cs for cs in options):
    raise ValueError("every image needs at least one candidate")
  if budget == "pixels":
    cost = lambda c: 8. * len(c.data)
    limit = target_bpp * sum(cs[0].pixels for cs in options)
    value = ((lambda c: -c.squared_error) if metric == "psnr"
             else (lambda c: c.quality))  # (the mean of the images')
  else:
    cost, limit, value = (lambda c: c.bpp), target_bpp * len(options), (
        lambda c: c.quality)
  smallest = [min(cs, key=cost) for cs in options]
  if sum(map(cost, smallest)) > limit:
    return smallest, False
  feasible = [chosen for chosen in [_knapsack(options, cost, value, limit)] +
              _single_models(options) if chosen is not None and
              sum(map(cost, chosen)) <= limit]
  return max(feasible + [smallest],
             key=lambda chosen: sum(map(value, chosen))), True


def _knapsack(options, cost, value, limit):
  """The multiple-choice knapsack by dynamic programming over the images:
  the candidates of most summed `value` whose summed `cost` is at most
  `limit`, on a grid of GRID steps of the limit (each cost rounded up, so
  the limit holds; what the rounding loses is under a step per image)."""
  step = max(limit / GRID, 1e-12)
  capacity = int(limit / step)
  costs = [[math.ceil(cost(c) / step) for c in cs] for cs in options]
  best = np.full(capacity + 1, -np.inf)
  best[0] = 0.
  choices = np.zeros((len(options), capacity + 1), np.int32)
  for i, candidates in enumerate(options):
    new = np.full_like(best, -np.inf)
    for j, (c, c_cost) in enumerate(zip(candidates, costs[i])):
      if c_cost > capacity:
        continue
      total = np.full_like(best, -np.inf)
      total[c_cost:] = best[:capacity + 1 - c_cost] + value(c)
      better = total > new
      new[better], choices[i][better] = total[better], j
    best = new
  k = int(np.argmax(best))
  if not np.isfinite(best[k]):
    return None
  chosen = []
  for i in reversed(range(len(options))):
    j = choices[i][k]
    chosen.append(options[i][j])
    k -= costs[i][j]
  return chosen[::-1]


def _single_models(options):
  """Each model that codes every image, as an allocation."""
  models = set.intersection(*({c.model for c in cs} for cs in options))
  return [[next(c for c in cs if c.model == model) for cs in options]
          for model in sorted(models)]


def single_models(options, metric="psnr", budget="pixels"):
  """{model: (`set_rate`, `set_score`)} of each model that codes every
  image."""
  return {chosen[0].model: (set_rate(chosen, budget),
                            set_score(chosen, metric, budget))
          for chosen in _single_models(options)}


def model_for(data, export_dirs):
  """The export directory whose model made the stream `data` (by the model
  id in its header); a `BitstreamError` naming the models if none did."""
  if len(data) < bitstream.MODEL_ID_AT + bitstream.MODEL_ID_BYTES or (
      not data.startswith(bitstream.MAGIC)):
    raise bitstream.BitstreamError("not a tflic bitstream (bad magic bytes "
                                   "or too short)")
  model_id = data[bitstream.MODEL_ID_AT:
                  bitstream.MODEL_ID_AT + bitstream.MODEL_ID_BYTES].hex()
  for export_dir in export_dirs:
    if export.info(export_dir).get("model_id") == model_id:
      return export_dir
  raise bitstream.BitstreamError(
      f"the bitstream was made by none of the models {', '.join(export_dirs)} "
      f"(its model id is {model_id})")
