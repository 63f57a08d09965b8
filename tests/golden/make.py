"""Makes the golden streams (tests/test_golden.py): run by hand, from the
repository root, only to add a model or variant, never to hide a change:

  python -m tests.golden.make [VARIANT ...]
  python -m tests.golden.make --streams [VARIANT ...]  # new streams of the
                                                       # stored models

For each variant: a tiny model (8 channels) trained 10 steps on the sample
photos with a seed, saved as a model-only checkpoint (with its SLIMD
dictionary for "slimd"); the files it writes for the three images in
images/ (a photo crop, noise, an odd size) and their decoded images.

The encoder's symbols come from float transforms, which round differently
on other machines in their last bits; a golden stream must not depend on
that. So a variant is kept only if perturbing the analysis output by 1e-4
(relative and absolute) leaves every stream unchanged: no coded value lies
near a rounding boundary. Otherwise the next seed is tried.
"""

import json
import os
import shutil
import sys
import tempfile

import numpy as np
from PIL import Image
import tensorflow as tf

from tflic import codec as codec_lib
from tflic import data
from tflic import images as images_lib
from tflic import slimd_fit
from tflic import train
from tflic.entropy import slimd
from tflic.models.base import checkpoint_root

ROOT = os.path.dirname(os.path.abspath(__file__))
SMALL = dict(num_filters=8, latent_channels=8, hyper_channels=8)
VARIANTS = {
    "factorized": ("factorized", dict(num_filters=8)),
    "slimd": ("factorized", dict(num_filters=8, num_layers=4,
                                 latent_channels=8)),
    "hyperprior": ("hyperprior", SMALL),
    "joint": ("joint", SMALL),
    "cheng2020": ("cheng2020", dict(num_filters=8, mixture_components=3)),
    "qian2021": ("qian2021", dict(SMALL, warmup_steps=5)),
    "qian2021_experts": ("qian2021", dict(SMALL, warmup_steps=5,
                                          stage_combination="experts")),
    "wen2019": ("wen2019", SMALL),
    "ms2020": ("ms2020", dict(SMALL, num_slices=4, max_support_slices=2)),
    "elic2022": ("elic2022", dict(num_filters=8, latent_channels=8)),
    # The parallel context (two passes, Gaussian and K = 3 mixture).
    "joint_checkerboard": ("joint", dict(SMALL, context="checkerboard")),
    "cheng2020_checkerboard": ("cheng2020", dict(
        num_filters=8, mixture_components=3, context="checkerboard")),
    # σ itself from h_s (its integer head: σ, turned into the scale index by
    # integer comparisons), trained with noise (CompressAI's form).
    "hyperprior_sigma": ("hyperprior", dict(SMALL, scale="sigma",
                                            quantization="noise")),
    # All of CompressAI's form: also its densities' depth and its padding
    # in h_a/h_s (zero-padding and cropping layers in the integer h_s).
    "hyperprior_compressai": ("hyperprior", dict(
        SMALL, scale="sigma", quantization="noise", density_layers=4,
        hyper_padding="pytorch")),
    # And its GDN (the original form) and leaky ReLUs in h_a/h_s (the integer
    # h_s's second multiplier, slope 0.01). Not its centred padding of g_a/g_s
    # (float transforms; exact coding: tests/test_models.py): after the 10
    # steps here its y lies far in the tails of its prior (8 σ on average),
    # where the coder's escapes cost half the model's own estimate, which
    # tests/test_contract.py's rate check refuses.
    "hyperprior_compressai_all": ("hyperprior", dict(
        SMALL, scale="sigma", quantization="noise", density_layers=4,
        hyper_padding="pytorch", likelihood_bound=1e-9, gdn="original",
        hyper_activation="leaky_relu")),
    # Variable rate (gain units): the streams carry the quality.
    "hyperprior_vr": ("hyperprior", dict(SMALL, lmbdas=[.002, .01, .05])),
    "cheng2020_vr": ("cheng2020", dict(num_filters=8, mixture_components=3,
                                       lmbdas=[.002, .01, .05])),
}
PERTURBATION = 1e-4


def images():
  """{name: uint8 [H, W, 3]} of images/*.png (made on first use)."""
  folder = os.path.join(ROOT, "images")
  if not os.path.isdir(folder):
    os.makedirs(folder)
    photo = images_lib.read_image(data.samples_holdout())[0][120:184, 200:296]
    rng = np.random.default_rng(2026)
    noise = rng.integers(0, 256, (48, 80, 3), dtype=np.uint8)
    small = rng.integers(0, 256, (3, 5, 3)).astype(np.float32)
    odd = tf.image.resize(small[None], [17, 33])[0].numpy()
    for name, image in (("photo", photo), ("noise", noise),
                        ("odd", np.round(odd).astype(np.uint8))):
      Image.fromarray(image).save(os.path.join(folder, f"{name}.png"))
  return {name[:-4]: images_lib.read_image(os.path.join(folder, name))[0]
          for name in sorted(os.listdir(folder))}


def load(variant):
  """The golden model of a variant (its checkpoint, and SLIMD dictionary)."""
  folder = os.path.join(ROOT, variant)
  with open(os.path.join(folder, "config.json")) as f:
    config = json.load(f)
  model = train.build(config["model"], config["args"])
  path = os.path.join(folder, "model")
  # Written before latent codecs: read through the old names, as users'
  # runs of that time are.
  tf.train.Checkpoint(model=checkpoint_root(model, path)).read(
      path).assert_existing_objects_matched()
  if os.path.exists(os.path.join(folder, slimd_fit.FILE)):
    stored = np.load(os.path.join(folder, slimd_fit.FILE))
    model.use_slimd(slimd.Slimd(
        stored["dictionary"], stored["index_counts"], int(stored["tile"]),
        int(stored["radius"]), tuple(stored["same_counts"])))
  return model


def _streams(model, pictures, perturb=None):
  codec = codec_lib.Codec(model)
  if perturb is not None:
    analyze = model.analyze
    model.analyze = lambda x: perturb(analyze(x))
  try:
    return codec, {name: codec.encode(image)["bitstream_bytes"].numpy()
                   for name, image in pictures.items()}
  finally:
    if perturb is not None:
      del model.analyze


def write_streams(variant, seed):
  """Writes the streams and decoded images of a variant's stored model;
  False (nothing written) if a coded value lies near a rounding boundary."""
  pictures = images()
  folder = os.path.join(ROOT, variant)
  codec, streams = _streams(load(variant), pictures)
  robust = all(
      _streams(load(variant), pictures, lambda y, i=i: y + PERTURBATION * (
          1 + tf.abs(y)) * tf.sign(tf.random.stateless_uniform(
              tf.shape(y), [seed, i]) - .5))[1] == streams
      for i in range(3))
  if robust:
    for image, data_ in streams.items():
      with open(os.path.join(folder, f"{image}.tfl"), "wb") as f:
        f.write(data_)
      decoded = codec.decode(data_)["image"].numpy()
      Image.fromarray(decoded).save(os.path.join(folder, f"{image}.png"))
    print(f"{variant}: seed {seed}, "
          f"{sum(map(len, streams.values()))} bytes")
  return robust


def make(variant):
  name, args = VARIANTS[variant]
  folder = os.path.join(ROOT, variant)
  for seed in range(1, 30):
    with tempfile.TemporaryDirectory() as run_dir:
      model = train.train(name, args, "samples", run_dir, steps=10,
                          batch_size=2, patch_size=64, learning_rate=3e-3,
                          checkpoint_every=10, log_every=10, seed=seed)
      shutil.rmtree(folder, ignore_errors=True)
      os.makedirs(folder)
      weights = train.build(name, args)  # without the optimizer's state
      for target, value in zip(weights.variables, model.variables):
        target.assign(value)
      tf.train.Checkpoint(model=weights).write(os.path.join(folder, "model"))
      if variant == "slimd":
        slimd_fit.fit(model, run_dir, "samples", entries=16, tile=2,
                      iterations=5, seed=seed, progress=None)
        shutil.copy(os.path.join(run_dir, slimd_fit.FILE), folder)
    with open(os.path.join(folder, "config.json"), "w") as f:
      json.dump(dict(model=name, args=args, seed=seed), f, indent=1)
    if write_streams(variant, seed):
      return
    print(f"{variant}: seed {seed} puts a coded value near a rounding "
          "boundary; next seed")
  raise RuntimeError(f"{variant}: no robust seed")


def remake_streams(variant):
  """New streams of a variant's stored model (a change of its coding
  tables that bumps the format or leaves old files decodable: say which)."""
  with open(os.path.join(ROOT, variant, "config.json")) as f:
    seed = json.load(f)["seed"]
  if not write_streams(variant, seed):
    raise RuntimeError(f"{variant}: a coded value lies near a rounding "
                       "boundary; make a new model (without --streams)")


if __name__ == "__main__":
  streams_only = "--streams" in sys.argv[1:]
  for v in [a for a in sys.argv[1:] if a != "--streams"] or VARIANTS:
    (remake_streams if streams_only else make)(v)
