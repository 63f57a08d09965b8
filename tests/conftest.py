"""Shared fixtures: sample photos, tiny trained models and their SavedModels.

The suite runs on both cores (`make test`: pytest-xdist, 2 workers); a model
that several workers need is trained or exported once, by the first worker
that asks for it, and shared through the session's temporary directory."""

import os
import shutil
import subprocess
import sys

import filelock
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_compression as tfc

from tflic import data
from tflic import export
from tflic import images
from tflic import models
from tflic import slimd_fit
from tflic import train
from tflic import codec as codec_lib
from tflic.models import context_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = dict(num_filters=16, latent_channels=16, hyper_channels=16)
# Child processes import tflic from this tree (not from wherever the package
# is installed), e.g. when the suite runs from a git worktree.
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="",
           PYTHONPATH=os.pathsep.join(
               [ROOT] + [p for p in [os.environ.get("PYTHONPATH")] if p]))


def run(args, env=None, timeout=600, **kwargs):
  """Runs a Python program (bin/NAME or '-c CODE') in a fresh process, with
  `env` added to the environment."""
  if args[0].startswith("bin/"):
    args = [os.path.join(ROOT, args[0])] + list(args[1:])
  return subprocess.run([sys.executable] + list(args), capture_output=True,
                        text=True, env=dict(ENV, **(env or {})), cwd=ROOT,
                        timeout=timeout, **kwargs)


@pytest.fixture(scope="session")
def photo():
  """A 600×400 photo that the 'samples' training set does not contain."""
  return images.read_image(data.samples_holdout())[0]


def shared(tmp_path_factory, name, make):
  """A directory that make(path) fills once per test session, whichever
  worker asks first; the others wait for it."""
  root = tmp_path_factory.getbasetemp()
  if os.environ.get("PYTEST_XDIST_WORKER"):
    root = root.parent  # the session's directory, above the workers' own
  path = root / f"shared-{name}"
  with filelock.FileLock(f"{path}.lock"):
    if not (path / ".done").exists():
      shutil.rmtree(path, ignore_errors=True)
      make(str(path))
      (path / ".done").touch()
  return str(path)


def _train(tmp_path_factory, name, args, steps, seed, **kwargs):
  """A tiny model trained briefly on the sample photos (gradients clipped,
  so that a short run at a high learning rate does not end far off); its run
  directory."""
  return shared(tmp_path_factory, f"run-{name}", lambda path: train.train(
      name, args, "samples", path, steps=steps, batch_size=4, patch_size=128,
      learning_rate=3e-3, checkpoint_every=steps, log_every=steps, seed=seed,
      **kwargs))


@pytest.fixture(scope="session")
def trained_dir(tmp_path_factory):
  """A tiny hyperprior trained for 60 steps."""
  return _train(tmp_path_factory, "hyperprior", TINY, 60, 1)


@pytest.fixture(scope="session")
def joint_dir(tmp_path_factory):
  return _train(tmp_path_factory, "joint", TINY, 40, 2)


@pytest.fixture(scope="session")
def cheng_dir(tmp_path_factory):
  """cheng2020 with the K = 3 mixture, N = 8."""
  return _train(tmp_path_factory, "cheng2020",
                dict(num_filters=8, mixture_components=3), 40, 2)


@pytest.fixture(scope="session")
def qian_dir(tmp_path_factory):
  return _train(tmp_path_factory, "qian2021", dict(TINY, warmup_steps=20), 40,
                3)


@pytest.fixture(scope="session")
def wen_dir(tmp_path_factory):
  """wen2019 with every step of the paper (Table 2's last row)."""
  return _train(tmp_path_factory, "wen2019", TINY, 40, 4)


@pytest.fixture(scope="session")
def slimd_dir(tmp_path_factory):
  """A tiny four-layer factorized run (SLIMD's baseline) with a dictionary
  of 24 entries over 4×4 tiles (small images still have several) fitted by
  bin/slimd_fit on the sample photos."""
  def make(path):
    train.train("factorized", dict(num_filters=16, num_layers=4,
                                   latent_channels=16), "samples", path,
                steps=40, batch_size=4, patch_size=128, learning_rate=3e-3,
                checkpoint_every=40, log_every=40, seed=5)
    result = run(["bin/slimd_fit", f"--model_dir={path}", "--slimd_entries=24",
                  "--slimd_tile=4", "--iterations=5"])
    assert result.returncode == 0, result.stderr
    assert "iteration 1: eq. 2 =" in result.stdout
    assert "stored the SLIMD dictionary" in result.stdout
  return shared(tmp_path_factory, "run-slimd", make)


@pytest.fixture()
def trained_model(trained_dir):
  return train.load(trained_dir)


def _export(tmp_path_factory, name, run_dir=None):
  """The SavedModel of a trained run (without one: fresh weights, N = 16;
  "slimd": the SLIMD run's factorized model with its dictionary)."""
  def make(path):
    model = (train.load(run_dir) if run_dir else
             train.build(name, dict(num_filters=16)))
    if name == "slimd":
      model.use_slimd(slimd_fit.load(run_dir))
    export.export(model, os.path.join(path, "1"), name=name)
  return os.path.join(shared(tmp_path_factory, f"export-{name}", make), "1")


@pytest.fixture(scope="session")
def exported_dir(tmp_path_factory, trained_dir):
  """The trained hyperprior's SavedModel."""
  return _export(tmp_path_factory, "hyperprior", trained_dir)


@pytest.fixture(scope="session")
def exports(tmp_path_factory, exported_dir, joint_dir, cheng_dir, qian_dir,
            wen_dir, slimd_dir):
  """A SavedModel of every registered model, by name (trained briefly by
  the fixtures above; factorized untrained), and "slimd"."""
  runs = dict(joint=joint_dir, cheng2020=cheng_dir, qian2021=qian_dir,
              wen2019=wen_dir, slimd=slimd_dir)
  result = dict(hyperprior=exported_dir)
  for name in models.names() + ["slimd"]:
    if name != "hyperprior":
      result[name] = _export(tmp_path_factory, name, runs.get(name))
  return result


def random_image(height, width, seed=0):
  """A smooth random image (not white noise, so it codes like a photo)."""
  rng = np.random.default_rng(seed)
  small = rng.integers(0, 256, (max(1, height // 8), max(1, width // 8), 3))
  image = tf.image.resize(small[None].astype(np.float32), [height, width])[0]
  return np.clip(np.round(image.numpy()), 0, 255).astype(np.uint8)


def assert_rate_matches_estimate(payload, estimate):
  """The coder adds at most 1 % to the model's estimated rate. (The file may be
  smaller than the estimate: a briefly trained model puts some symbols far in a
  tail, where its −log2 p exceeds the bounded cost the range coder's escape or
  the bisection's table gives them; trained models agree two-sided, e.g.
  −0.006 % on Kodak, see bin/benchmark.)"""
  assert payload <= 1.01 * estimate, (payload, estimate)
  assert payload >= 0.5 * estimate, (payload, estimate)


def assert_exact_coding(model, x):
  """Encoder and decoder agree on every latent, and the streams' size matches
  the model's estimated rate. Returns the encoder's latents."""
  streams, encoded = tf.function(model.encode_latents)(x)
  decoded = tf.function(model.decode_latents)(streams, *x.shape[1:3])
  for name in ("y_hat", "z_hat"):
    np.testing.assert_array_equal(encoded[name].numpy(), decoded[name].numpy())
  payload = sum(len(s.numpy()) for s in streams)
  estimate = float(model.estimate_bits(x)) / 8
  assert_rate_matches_estimate(payload, estimate)
  return encoded


def assert_parallel_encoder_matches_serial(model, image):
  """A frozen context model's encoder computes the integer parameters of a
  band of rows at once; its bytes equal those of the position-by-position
  loop the decoder runs, whatever the bands (the whole image, one row, five
  rows with a shorter last band)."""
  x = codec_lib.pad_to_multiple(image, model.multiple, model.pad_mode)
  y = model.analyze(tf.cast(x, tf.float32)[None] / 255.)
  z_hat = model.hyper_prior.coder.quantize(model.hyper_analysis(y))
  y_symbols = context_model.symbols(y)[0]
  new = lambda: tfc.create_range_encoder([], model.coder.table)
  serial = model._scan(new(), z_hat, y_symbols)[0]  # pylint: disable=protected-access
  expected = tfc.entropy_encode_finalize(serial).numpy()
  height, width = y_symbols.shape[:2]
  assert height % 5  # so that five-row bands end with a shorter one
  default = model.band_positions
  try:
    for positions in (height * width, 1, 5 * width + 1):
      model.band_positions = positions
      parallel = model.encode_y(new(), z_hat, y_symbols)
      assert tfc.entropy_encode_finalize(parallel).numpy() == expected
  finally:
    model.band_positions = default
