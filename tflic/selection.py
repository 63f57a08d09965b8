"""Model selection for a target bit rate (Wen et al. 2019, §3 and Table 5).

The paper meets CLIC's rate limit by coding each image with several models
(one family at several λ) and keeping, per image, a stream that fits. Two
rules:
  - `best_fitting`: one image, a size limit: the highest-quality stream of
    at most `limit` bytes (the smallest one if none fits);
  - `allocate`: a set of images, a limit on the mean bpp: one model per image
    maximizing the mean quality under the limit. The paper does not say how;
    this solves the multiple-choice knapsack exactly up to a grid of 2^16
    steps of the summed rate (dynamic programming; costs rounded up, so the
    limit always holds), and keeps a single model for all images if that is
    as good (never worse than the best single model within the limit).

A stream names its model (the container's model id, `bitstream.py`), so the
decoder finds the model among several (`model_for`).
"""

import dataclasses
import math

import numpy as np

from tflic import bitstream
from tflic import export
from tflic import metrics

METRICS = {"psnr": metrics.psnr, "ms_ssim": metrics.image_ms_ssim}


@dataclasses.dataclass(frozen=True)
class Candidate:
  """One model's coding of one image: its stream and its measured quality."""
  model: str
  data: bytes
  bpp: float
  quality: float


def code_with_each(image, models, metric="psnr"):
  """Codes `image` (uint8 [H, W, 3]) with each of `models` ({name:
  SavedCodec}) and decodes each stream to measure its `metric` (a key of
  METRICS). → [Candidate]."""
  height, width = image.shape[:2]
  result = []
  for name, model in models.items():
    data = model.encode(image)
    quality = METRICS[metric](image, model.decode(data))
    result.append(Candidate(name, data, metrics.bpp(len(data), height, width),
                            float(quality)))
  return result


def best_fitting(candidates, limit):
  """(the best candidate of at most `limit` bytes, whether one fits): the
  highest quality among those that fit, else the smallest."""
  fitting = [c for c in candidates if len(c.data) <= limit]
  if fitting:
    return max(fitting, key=lambda c: (c.quality, -len(c.data))), True
  return min(candidates, key=lambda c: len(c.data)), False


GRID = 1 << 16  # steps of the summed rate in the allocation's knapsack


def allocate(options, target_bpp):
  """options: per image, its candidates (one per model). → (the chosen
  candidate per image, whether the mean bpp meets `target_bpp`): the most
  quality whose mean bpp is within the target (`_knapsack`), else each
  image's smallest stream."""
  if any(not cs for cs in options):
    raise ValueError("every image needs at least one candidate")
  smallest = [min(cs, key=lambda c: c.bpp) for cs in options]
  limit = target_bpp * len(options)
  if sum(c.bpp for c in smallest) > limit:
    return smallest, False
  feasible = [chosen for chosen in [_knapsack(options, limit)] +
              _single_models(options) if chosen is not None and
              sum(c.bpp for c in chosen) <= limit]
  return max(feasible + [smallest],
             key=lambda chosen: sum(c.quality for c in chosen)), True


def _knapsack(options, limit):
  """The multiple-choice knapsack by dynamic programming over the images:
  the candidates of most summed quality whose summed bpp is at most
  `limit`, on a grid of GRID steps of the limit (each cost rounded up, so
  the limit holds; what the rounding loses is under a step per image)."""
  step = max(limit / GRID, 1e-12)
  capacity = int(limit / step)
  costs = [[math.ceil(c.bpp / step) for c in cs] for cs in options]
  best = np.full(capacity + 1, -np.inf)
  best[0] = 0.
  choices = np.zeros((len(options), capacity + 1), np.int32)
  for i, candidates in enumerate(options):
    new = np.full_like(best, -np.inf)
    for j, (c, cost) in enumerate(zip(candidates, costs[i])):
      if cost > capacity:
        continue
      value = np.full_like(best, -np.inf)
      value[cost:] = best[:capacity + 1 - cost] + c.quality
      better = value > new
      new[better], choices[i][better] = value[better], j
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


def single_models(options):
  """{model: (mean bpp, mean quality)} of each model that codes every image."""
  return {chosen[0].model: (sum(c.bpp for c in chosen) / len(chosen),
                            sum(c.quality for c in chosen) / len(chosen))
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
