"""Shared fixtures: sample photos, a tiny trained hyperprior and its SavedModel."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_compression as tfc

from tflic import data
from tflic import export
from tflic import images
from tflic import models
from tflic import train
from tflic import codec as codec_lib
from tflic.models import context_model

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = dict(num_filters=16, latent_channels=16, hyper_channels=16)
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="")


def run(args, env=None, **kwargs):
  """Runs a Python program (bin/NAME or '-c CODE') in a fresh process, with
  `env` added to the environment."""
  if args[0].startswith("bin/"):
    args = [os.path.join(ROOT, args[0])] + list(args[1:])
  return subprocess.run([sys.executable] + list(args), capture_output=True,
                        text=True, env=dict(ENV, **(env or {})), cwd=ROOT,
                        timeout=600, **kwargs)


@pytest.fixture(scope="session")
def photo():
  """A 600×400 photo that the 'samples' training set does not contain."""
  return images.read_image(data.samples_holdout())[0]


def _train(tmp_path_factory, name, args, steps, seed, **kwargs):
  """A tiny model trained briefly on the sample photos (gradients clipped,
  so that a short run at a high learning rate does not end far off); its run
  directory."""
  model_dir = str(tmp_path_factory.mktemp(name))
  train.train(name, args, "samples", model_dir, steps=steps, batch_size=4,
              patch_size=128, learning_rate=3e-3, checkpoint_every=steps,
              log_every=steps, seed=seed, **kwargs)
  return model_dir


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


@pytest.fixture()
def trained_model(trained_dir):
  return train.load(trained_dir)


@pytest.fixture(scope="session")
def exports(tmp_path_factory, trained_dir, joint_dir, cheng_dir, qian_dir):
  """A SavedModel of every registered model, by name (trained briefly by
  the fixtures above; factorized untrained)."""
  root = tmp_path_factory.mktemp("exports")
  runs = dict(hyperprior=trained_dir, joint=joint_dir, cheng2020=cheng_dir,
              qian2021=qian_dir)
  result = {}
  for name in models.names():
    model = (train.load(runs[name]) if name in runs else
             train.build(name, dict(num_filters=16)))
    result[name] = export.export(model, str(root / name / "1"), name=name)
  return result


@pytest.fixture(scope="session")
def exported_dir(exports):
  """The trained hyperprior's SavedModel."""
  return exports["hyperprior"]


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
  _, decoded = tf.function(model.decode_latents)(streams, *x.shape[1:3])
  for name in ("y_hat", "z_hat"):
    np.testing.assert_array_equal(encoded[name].numpy(), decoded[name].numpy())
  payload = sum(len(s.numpy()) for s in streams)
  estimate = float(model.estimate_bits(x)) / 8
  assert_rate_matches_estimate(payload, estimate)
  return encoded


def assert_parallel_encoder_matches_serial(model, image):
  """A frozen context model's encoder computes every position's integer
  parameters at once; its bytes equal those of the position-by-position loop
  the decoder runs."""
  x = codec_lib.pad_to_multiple(image, model.multiple, model.pad_mode)
  y = model.analysis(tf.cast(x, tf.float32)[None] / 255.)
  z_hat = model.hyper_prior.coder.quantize(model.hyper_analysis(y))
  y_symbols = context_model.symbols(y)[0]
  new = lambda: tfc.create_range_encoder([], model.coder.table)
  parallel = model.encode_y(new(), z_hat, y_symbols)
  serial = model._scan(new(), z_hat, y_symbols)[0]  # pylint: disable=protected-access
  assert (tfc.entropy_encode_finalize(parallel).numpy() ==
          tfc.entropy_encode_finalize(serial).numpy())
