"""SLIMD for a training run (Minnen et al. 2018, ICIP, §2.2): the
dictionary is fitted on tile histograms of the tensor the run's factorized
prior codes (ŷ of `factorized` as in the paper; ẑ of the hyperprior and
context models, beyond it) and stored beside the run's checkpoints (`FILE`),
for `bin/export`.

`fit` runs the images through the transforms, counts each (tile, channel)'s
symbols (`entropy.slimd.tile_histograms`), fits the dictionary to the normalized
histograms (eq. 2, `entropy.slimd_dictionary`), then learns the priors of the
tile indices from the encoder's own choices (eq. 1 and §2.3, with uniform
priors) on the same images: how often a tile's index equals its predicting
tile's (left, else above), and per channel how often each index is coded
(in the first tile and where it changes).
"""

import os

import numpy as np
import tensorflow as tf

from tflic import data
from tflic import images as images_lib
from tflic.entropy import slimd
from tflic.entropy import slimd_dictionary

FILE = "slimd.npz"


def _checkpoint(model_dir):
  latest = tf.train.latest_checkpoint(model_dir)
  return os.path.basename(latest) if latest else None


def fit(model, model_dir, train_data, entries=slimd.MAX_ENTRIES,
        tile=slimd.TILE, radius=slimd.RADIUS, iterations=20, seed=0,
        progress=print):
  """Fits and stores the dictionary of a trained model; returns the path of
  the file. `progress(text)` reports each stage."""
  if not 1 <= entries <= slimd.MAX_ENTRIES:
    raise ValueError(f"--slimd_entries must be 1 … {slimd.MAX_ENTRIES}")
  if tile < 1 or radius < 1:
    raise ValueError("--slimd_tile and --slimd_radius must be positive")
  model = model.clone()
  model.latent_codec.factorized_codec.freeze()
  files = data.image_files(train_data)
  counts, columns = [], []
  for i, path in enumerate(files):
    count, width = tile_counts(model, images_lib.read_image(path)[0], tile,
                               radius)
    counts.append(count.numpy())
    columns.append(width)
    if progress and ((i + 1) % 25 == 0 or i + 1 == len(files)):
      progress(f"histograms: {i + 1}/{len(files)} images")
  flat = np.concatenate([c.reshape(-1, c.shape[-1]) for c in counts])
  q = flat / flat.sum(1, keepdims=True)
  if progress:
    progress(f"fitting {entries} entries to {len(q)} tile histograms "
             f"({2 * radius + 2} bins)")
  dictionary, history = slimd_dictionary.fit(
      q, min(entries, len(q)), iterations, seed, progress=progress and (
          lambda i, value: progress(
              f"iteration {i + 1}: eq. 2 = {value / len(q):.4f} bits per "
              "symbol (mean KL)")))
  channels = model.latent_codec.factorized_codec.channels
  uniform = slimd.Slimd(dictionary, np.zeros([channels, 256]), tile, radius)
  index_counts = np.zeros([channels, 256], np.int64)
  same_counts = np.zeros(2, np.int64)
  for c, width in zip(counts, columns):
    indices = uniform.choose(tf.constant(c))[0].numpy()
    previous = slimd.predictors(len(indices), width).numpy()
    equal = indices[1:] == indices[previous]
    same_counts += [equal.sum(), equal.size]
    coded = np.concatenate([np.ones([1, channels], bool), ~equal])
    for channel in range(channels):
      index_counts[channel] += np.bincount(
          indices[coded[:, channel], channel], minlength=256)
  path = os.path.join(model_dir, FILE)
  with open(path + ".tmp", "wb") as f:
    np.savez(f, dictionary=dictionary, index_counts=index_counts, tile=tile,
             radius=radius, same_counts=same_counts,
             checkpoint=_checkpoint(model_dir), history=np.array(history))
  os.replace(path + ".tmp", path)
  return path


def tile_counts(model, image, tile, radius):
  """(The symbol counts [tiles, C, B] of the tensor the factorized prior
  codes for a uint8 image [H, W, 3], tiles per row) (its prior frozen)."""
  x = images_lib.pad_to_multiple(tf.constant(image), model.multiple,
                                 model.pad_mode)[None]
  prior = model.latent_codec.factorized_codec.prior_codec
  symbols = prior.symbols(model.factorized_tensor(x))[0]
  return (slimd.tile_histograms(symbols, tile, radius),
          -(-int(symbols.shape[1]) // tile))


def load(model_dir):
  """The `Slimd` coder stored in a run; an error if there is none or if it
  was fitted on another checkpoint than the run's latest."""
  path = os.path.join(model_dir, FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(f"{model_dir} has no SLIMD dictionary (run "
                            "bin/slimd_fit first, or export with --noslimd)")
  stored = np.load(path)
  checkpoint = str(stored["checkpoint"])
  if checkpoint != _checkpoint(model_dir):
    raise ValueError(
        f"the SLIMD dictionary of {model_dir} was fitted on {checkpoint}, the "
        f"run's latest checkpoint is {_checkpoint(model_dir)}: run "
        "bin/slimd_fit again")
  return slimd.Slimd(stored["dictionary"], stored["index_counts"],
                     int(stored["tile"]), int(stored["radius"]),
                     tuple(stored["same_counts"]) if "same_counts" in stored
                     else (1, 2))
