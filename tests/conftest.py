"""Shared fixtures: sample photos, the golden models (tiny seeded
checkpoints in tests/golden, trained 10 steps: no test trains a model it
only needs to code with) as codecs, run directories and SavedModels.

The suite runs on both cores (`make test`: pytest-xdist, 2 workers); what
several workers need is made once, by the first worker that asks for it,
and shared through the session's temporary directory. Each worker's
TensorFlow uses its share of the cores (intra-op threads), not all of them:
two workers on two cores otherwise run four busy threads."""

import collections
import contextlib
import importlib.machinery
import io
import json
import os
import shutil
import subprocess
import sys
import types

# (before TensorFlow is imported: it reads this once)
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", 1)) > 1:
  _CORES = (len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
            else os.cpu_count())
  os.environ.setdefault("TF_NUM_INTRAOP_THREADS", str(max(
      1, _CORES // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))))

from absl import app
from absl import flags
from absl.testing import flagsaver
import filelock
import numpy as np
import pytest
import tensorflow as tf

from tflic import cli
from tflic import codec as codec_lib
from tflic import data
from tflic import export
from tflic import images
from tflic import slimd_fit
from tests.golden import make as golden

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = dict(num_filters=16, latent_channels=16, hyper_channels=16)
VARIANTS = sorted(golden.VARIANTS)


def variants(names=VARIANTS, fast=None):
  """Parameters for tests over golden variants. Each is in its variant's
  xdist group (`make test` runs `--dist loadgroup`), so one worker builds
  and traces a variant's codec for all its tests. Those not in `fast` (if
  given) run in the slow suite only."""
  return [pytest.param(name, marks=[pytest.mark.xdist_group(name)] + (
      [pytest.mark.slow] if fast is not None and name not in fast else []))
          for name in names]


# Child processes import tflic from this tree (not from wherever the package
# is installed), e.g. when the suite runs from a git worktree, and use one
# intra-op thread unless a test is about threads.
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", CUDA_VISIBLE_DEVICES="",
           TF_NUM_INTRAOP_THREADS="1",
           PYTHONPATH=os.pathsep.join(
               [ROOT] + [p for p in [os.environ.get("PYTHONPATH")] if p]))


def run(args, env=None, timeout=600, **kwargs):
  """Runs a Python program (bin/NAME or '-c CODE') in a fresh process, with
  `env` added to the environment (a None value: the variable removed)."""
  if args[0].startswith("bin/"):
    args = [os.path.join(ROOT, args[0])] + list(args[1:])
  env = {k: v for k, v in dict(ENV, **(env or {})).items() if v is not None}
  return subprocess.run([sys.executable] + list(args), capture_output=True,
                        text=True, env=env, cwd=ROOT,
                        timeout=timeout, **kwargs)


Result = collections.namedtuple("Result", "returncode stdout stderr")


def tool(args):
  """bin/NAME (args[0]) run in this process, as `run` runs it in a fresh one
  (each tool keeps one end-to-end `run` test): its flags defined, parsed
  from args and removed again after (the tools define flags of the same
  names); stdout and stderr captured; user, usage and flag errors end in
  exit code 1 as under absl's app."""
  path = os.path.join(ROOT, args[0])
  name = os.path.basename(path)
  before = set(flags.FLAGS)
  loader = importlib.machinery.SourceFileLoader(f"bin_{name}", path)
  module = sys.modules[loader.name] = types.ModuleType(loader.name)
  module.__file__ = path
  stdout, stderr = io.StringIO(), io.StringIO()
  try:
    loader.exec_module(module)
    with flagsaver.flagsaver(), contextlib.redirect_stdout(stdout), \
        contextlib.redirect_stderr(stderr):
      try:
        code = cli.call(module.main, cli.parse([name] + list(args[1:])),
                        name)
      except (flags.Error, app.UsageError) as e:
        print(f"{name}: {e}", file=sys.stderr)
        code = 1
      except SystemExit as e:
        code = e.code
  finally:
    for flag in set(flags.FLAGS) - before:
      delattr(flags.FLAGS, flag)
    del sys.modules[loader.name]
  return Result(code, stdout.getvalue(), stderr.getvalue())


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


@pytest.fixture(scope="session")
def codecs():
  """variant → the `Codec` of its golden model (made once per worker)."""
  made = {}

  def get(variant):
    if variant not in made:
      made[variant] = codec_lib.Codec(golden.load(variant))
    return made[variant]
  return get


def make_run(path, variant):
  """A training run directory (config.json, a checkpoint, SLIMD's
  dictionary) holding the golden model of `variant`, as bin/train leaves
  one."""
  model = golden.load(variant)
  name, args = golden.VARIANTS[variant]
  os.makedirs(path, exist_ok=True)
  with open(os.path.join(path, "config.json"), "w") as f:
    json.dump(dict(model=name, args=args, lmbda=model.lmbda,
                   distortion=model.distortion, train_data="samples"), f)
  tf.train.Checkpoint(model=model).save(os.path.join(path, "ckpt"))
  source = os.path.join(golden.ROOT, variant, slimd_fit.FILE)
  if os.path.exists(source):
    stored = dict(np.load(source))
    stored["checkpoint"] = os.path.basename(tf.train.latest_checkpoint(path))
    np.savez(os.path.join(path, slimd_fit.FILE), **stored)
  return path


@pytest.fixture(scope="session")
def run_dirs(tmp_path_factory):
  """variant → a run directory of its golden model (`make_run`)."""
  return lambda variant: shared(tmp_path_factory, f"run-{variant}",
                                lambda path: make_run(path, variant))


@pytest.fixture(scope="session")
def trained_dir(run_dirs):
  """The golden hyperprior's run directory."""
  return run_dirs("hyperprior")


@pytest.fixture(scope="session")
def exports(tmp_path_factory, codecs):
  """variant → the SavedModel of its golden model, exported on first use
  (from its `codecs` codec, as traced)."""
  class Exports(dict):
    def __missing__(self, variant):
      root = shared(tmp_path_factory, f"export-{variant}", lambda path: (
          export.save(codecs(variant), os.path.join(path, "1"),
                      name=golden.VARIANTS[variant][0])))
      self[variant] = os.path.join(root, "1")
      return self[variant]
  return Exports()


@pytest.fixture(scope="session")
def exported_dir(exports):
  """The golden hyperprior's SavedModel."""
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


def padded(model, image):
  """A uint8 image as the model's input [1, H, W, 3] in [0, 1], padded."""
  x = images.pad_to_multiple(tf.constant(image), model.multiple,
                             model.pad_mode)
  return tf.cast(x, tf.float32)[None] / 255.


_TRACED = {}


def coding_functions(model, fresh=False):
  """`model`'s encode_latents and decode_latents as tf.functions for images
  of any size, traced once per model (`fresh`: traced anew, e.g. after a
  test changed a constant that is read when tracing)."""
  if fresh or id(model) not in _TRACED:
    # Without autograph, as the codec's (its loops are tf.while_loops).
    encode = tf.function(model.encode_latents, autograph=False,
                         input_signature=[
                             tf.TensorSpec([1, None, None, 3], tf.float32)])
    decode = tf.function(model.decode_latents, autograph=False,
                         input_signature=[
                             [tf.TensorSpec([], tf.string)] * model.num_streams,
                             tf.TensorSpec([], tf.int32),
                             tf.TensorSpec([], tf.int32)])
    _TRACED[id(model)] = model, encode, decode
  return _TRACED[id(model)][1:]


def assert_exact_coding(model, x, estimate=True, fresh=False):
  """A frozen model's encoder and decoder agree on every latent, and the
  streams' size matches the model's estimated rate. Returns the encoder's
  latents. (`fresh`: `coding_functions`.)"""
  encode, decode = coding_functions(model, fresh)
  streams, encoded = encode(x)
  decoded = decode(streams, *x.shape[1:3])
  assert sorted(encoded) == sorted(decoded)
  for name in encoded:
    np.testing.assert_array_equal(encoded[name].numpy(), decoded[name].numpy())
  if estimate:
    # A variable-rate model's first stream is its quality (2 bytes of side
    # information the estimate does not count).
    payload = sum(len(s.numpy()) for s in streams[bool(model.gain_units):])
    assert_rate_matches_estimate(payload, float(model.estimate_bits(x)) / 8)
  return encoded
