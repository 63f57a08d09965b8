"""bin/train: a killed run resumes at its checkpoint; mirrored training on two
logical CPU devices; a run directory is never mixed with another model."""

import glob
import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_compression as tfc

from tests.conftest import ENV, ROOT, random_image, run, tool
from tflic import initializers
from tflic import metrics
from tflic import models
from tflic.layers.gsdn import GSDN

TINY_FLAGS = ["--model=hyperprior", "--num_filters=8", "--latent_channels=8",
              "--hyper_channels=8", "--patch_size=64", "--batch_size=2",
              "--learning_rate=1e-3", "--log_every=1"]


@pytest.mark.slow  # resuming: test_sigterm_saves_and_resumes
def test_killed_run_resumes_at_its_step(tmp_path):
  model_dir = str(tmp_path / "run")
  command = [sys.executable, os.path.join(ROOT, "bin/train"), *TINY_FLAGS,
             "--steps=100000", "--checkpoint_every=5", f"--model_dir={model_dir}"]
  process = subprocess.Popen(command, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, env=ENV)
  try:
    for line in process.stdout:
      if "saved checkpoint at step 10" in line:
        process.send_signal(signal.SIGKILL)
        break
  finally:
    process.kill()
    process.wait()
  killed_at = int(tf.train.latest_checkpoint(model_dir).rsplit("-", 1)[1])
  assert killed_at >= 5  # the checkpoint it was killed after (or an earlier one)
  result = run(["bin/train", *TINY_FLAGS, f"--steps={killed_at + 3}",
                "--checkpoint_every=5", f"--model_dir={model_dir}"])
  assert result.returncode == 0, result.stderr[-3000:]
  assert f"resuming at step {killed_at} of {killed_at + 3}" in result.stderr
  assert f"step {killed_at + 1}/{killed_at + 3}" in result.stderr
  assert f"step {killed_at}/" not in result.stderr
  assert f"saved checkpoint at step {killed_at + 3}" in result.stderr


def test_sigterm_saves_and_resumes(tmp_path):
  model_dir = str(tmp_path / "run")
  command = [sys.executable, os.path.join(ROOT, "bin/train"), *TINY_FLAGS,
             "--steps=100000", "--checkpoint_every=1000",
             f"--model_dir={model_dir}"]
  process = subprocess.Popen(command, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, env=ENV)
  output = []
  for line in process.stdout:
    output.append(line)
    if "step 3/" in line:
      process.send_signal(signal.SIGTERM)
  assert process.wait() == 130, "".join(output)[-3000:]
  step = int(tf.train.latest_checkpoint(model_dir).rsplit("-", 1)[1])
  assert step >= 3 and "run the same command again" in "".join(output)


def test_mirrored_on_two_logical_cpus(tmp_path):
  result = run(["bin/train", *TINY_FLAGS, "--steps=3", "--strategy=mirrored",
                "--logical_cpus=2", f"--model_dir={tmp_path}/run",
                f"--export_dir={tmp_path}/export"])
  assert result.returncode == 0, result.stderr[-3000:]
  assert "2 replica(s)" in result.stderr
  assert "step 3/3" in result.stderr
  assert os.path.exists(f"{tmp_path}/export/saved_model.pb")


def test_other_model_in_same_dir_is_refused(tmp_path):
  from tflic import train  # pylint: disable=import-outside-toplevel
  train.train("hyperprior", dict(num_filters=8, latent_channels=8,
                                 hyper_channels=8), "samples",
              f"{tmp_path}/run", steps=0)  # writes the run's config.json
  result = tool(["bin/train", *TINY_FLAGS, "--num_filters=12", "--steps=2",
                 f"--model_dir={tmp_path}/run"])
  assert result.returncode == 1
  assert "use another --model_dir" in result.stderr.strip().splitlines()[-1]


def test_learning_rate_schedule_applies_from_the_resumed_step(tmp_path):
  from tflic import train  # pylint: disable=import-outside-toplevel
  args = dict(num_filters=8, latent_channels=8, hyper_channels=8)
  common = dict(batch_size=2, patch_size=64, checkpoint_every=1, log_every=1)
  train.train("hyperprior", args, "samples", str(tmp_path), steps=1,
              learning_rate=1e-3, **common)
  # Resumed at step 1 with a schedule that changes there: its second rate.
  model = train.train("hyperprior", args, "samples", str(tmp_path), steps=2,
                      lr_boundaries=[1], lr_values=[1e-3, 1e-5], **common)
  assert int(model.optimizer.iterations) == 2
  assert float(model.optimizer.learning_rate) == np.float32(1e-5)
  schedule = train.learning_rate_schedule(1., [4], [2., 3.])
  assert [schedule(s) for s in (0, 3, 4)] == [2., 2., 3.]
  for bad in (dict(boundaries=[4]), dict(boundaries=[4], values=[1.]),
              dict(boundaries=[4, 2], values=[1., 1., 1.]),
              dict(boundaries=["x"], values=[1., 1.])):
    with pytest.raises(ValueError, match="lr_|schedule"):
      train.learning_rate_schedule(1., **bad)


def test_a_seeded_run_repeats_and_a_resumed_one_draws_new_crops(tmp_path):
  import logging as std_logging  # pylint: disable=import-outside-toplevel
  from absl import logging  # pylint: disable=import-outside-toplevel
  from tflic import train  # pylint: disable=import-outside-toplevel
  args = dict(num_filters=8, latent_channels=8, hyper_channels=8)
  common = dict(batch_size=2, patch_size=64, log_every=1000, seed=3)
  lines = []  # bin/train's log (absl's logger, whatever its verbosity was)
  handler = std_logging.Handler()
  handler.emit = lambda record: lines.append(record.getMessage())
  verbosity = logging.get_verbosity()
  logging.set_verbosity(logging.INFO)
  logging.get_absl_logger().addHandler(handler)

  def run(name, steps):
    lines.clear()
    model = train.train("hyperprior", args, "samples", str(tmp_path / name),
                        steps=steps, **common)
    return model, re.search(r"first batch of 2 patches, digest (\w+)",
                            "\n".join(lines)).group(1)

  try:
    first, digest = run("a", 2)
    again, digest_again = run("b", 2)
    _, resumed = run("a", 3)
  finally:
    logging.get_absl_logger().removeHandler(handler)
    logging.set_verbosity(verbosity)
  assert digest_again == digest
  for a, b in zip(first.variables, again.variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  assert resumed != digest


def test_max_hours_ends_the_run_with_a_checkpoint(tmp_path):
  from tflic import train  # pylint: disable=import-outside-toplevel
  args = dict(num_filters=8, latent_channels=8, hyper_channels=8)
  common = dict(batch_size=2, patch_size=64, checkpoint_every=1000,
                log_every=1000)
  # A budget of ~0 ends the run after its first step, saved as at --steps.
  model = train.train("hyperprior", args, "samples", str(tmp_path),
                      steps=1000, max_hours=1e-9, **common)
  assert int(model.optimizer.iterations) == 1
  assert tf.train.latest_checkpoint(str(tmp_path)).endswith("ckpt-1")
  model = train.train("hyperprior", args, "samples", str(tmp_path), steps=3,
                      max_hours=1., **common)  # resumes; --steps ends it
  assert int(model.optimizer.iterations) == 3
  with pytest.raises(ValueError, match="--max_hours=-1"):
    train.train("hyperprior", args, "samples", str(tmp_path), steps=4,
                max_hours=-1., **common)


def test_eval_images_are_coded_during_training(tmp_path, monkeypatch):
  """--eval_images: real files' mean bpp and PSNR to eval.csv and TensorBoard
  at every --eval_every steps and at the end; a resumed run first drops the
  rows of steps after its checkpoint; a failed evaluation does not end the
  run."""
  from PIL import Image  # pylint: disable=import-outside-toplevel
  from tflic import train  # pylint: disable=import-outside-toplevel
  for i in range(2):
    Image.fromarray(random_image(48, 64, seed=i)).save(tmp_path / f"{i}.png")
  args = dict(num_filters=8, latent_channels=8, hyper_channels=8)
  common = dict(batch_size=2, patch_size=64, log_every=1000,
                eval_images=str(tmp_path / "*.png"), eval_every=2)
  run_dir = str(tmp_path / "run")
  with pytest.raises(ValueError, match="--eval_every=0"):
    train.train("hyperprior", args, "samples", run_dir, steps=1,
                **dict(common, eval_every=0))
  train.train("hyperprior", args, "samples", run_dir, steps=2, **common)
  csv = os.path.join(run_dir, "eval.csv")
  with open(csv) as f:
    header, row = f.read().splitlines()
  assert header == "step,level,bpp,psnr"
  # The figures of the run's checkpoint at step 2, coded as the export codes.
  from tflic import calibration  # pylint: disable=import-outside-toplevel
  from tflic import codec as codec_lib  # pylint: disable=import-outside-toplevel
  model = train.load(run_dir)
  codec = codec_lib.Codec(model, calibration.from_data(
      "samples", model.multiple, model.pad_mode))
  figures = []
  for i in range(2):
    image = np.asarray(Image.open(tmp_path / f"{i}.png"))
    stream = codec.encode(image)["bitstream_bytes"]
    figures.append((8 * len(stream.numpy()) / image[..., 0].size, float(
        metrics.psnr(image, codec.decode(stream)["image"].numpy()))))
  bpp, psnr = np.mean(figures, 0)
  assert row == f"2,,{bpp:.5f},{psnr:.3f}"
  assert os.listdir(os.path.join(run_dir, "eval"))  # TensorBoard's events
  with open(csv, "a") as f:  # evaluated after the last checkpoint (step 2)
    f.write("5,,1.0,20.0\n")
  train.train("hyperprior", args, "samples", run_dir, steps=3, **common)
  with open(csv) as f:
    assert [r.split(",")[0] for r in f.read().splitlines()] == [
        "step", "2", "3"]

  # A failed evaluation is logged: no error reaches the training loop.
  def fail(*unused):
    raise RuntimeError("out of memory")
  monkeypatch.setattr(train.Evaluation, "_rows", fail)
  train.Evaluation(run_dir, common["eval_images"], "samples", step=3)(
      model, 4)
  with open(csv) as f:
    assert len(f.read().splitlines()) == 3


def test_init_from_a_run_takes_its_weights_not_its_step(tmp_path):
  """--init_from=RUN_DIR: weights only; the new run starts at step 0 with a
  fresh optimizer (the Keras model tracks its optimizer, so a checkpoint read
  through it would bring the source's step and Adam moments along)."""
  from tflic import train  # pylint: disable=import-outside-toplevel
  args = dict(num_filters=8, latent_channels=8, hyper_channels=8)
  common = dict(batch_size=2, patch_size=64, log_every=1000)
  source = train.train("hyperprior", args, "samples", str(tmp_path / "a"),
                       steps=2, **common)
  model = train.train("hyperprior", args, "samples", str(tmp_path / "b"),
                      steps=1, init_from=str(tmp_path / "a"), **common)
  assert int(model.optimizer.iterations) == 1
  model = train.build("hyperprior", args)
  model.compile(optimizer=tf.keras.optimizers.Adam())
  model.optimizer.build(model.trainable_variables)
  train.load_weights(model, str(tmp_path / "a"))
  # The step and every Adam moment (m/…, v/…) as a fresh optimizer has them.
  assert not any(np.any(v.numpy()) for v in model.optimizer.variables)
  for a, b in zip(source.trainable_variables, model.trainable_variables):
    np.testing.assert_array_equal(a.numpy(), b.numpy())
  # The checkpoint's own prefix, or its .index file, as ls shows it.
  assert train.load_weights(train.build("hyperprior", args), str(
      tmp_path / "a" / "ckpt-2.index"))[0] == len(model.trainable_variables)
  # What is not a run, a checkpoint or a SavedModel: one clear error.
  (tmp_path / "empty").mkdir()
  (tmp_path / "text").write_text("not a checkpoint")
  (tmp_path / "bad.index").write_text("not a checkpoint")
  for source in ("missing", "empty", "text", "bad", "bad.index"):
    with pytest.raises(ValueError, match=f"--init_from=.*{source}"):
      train.load_weights(model, str(tmp_path / source))


def test_every_config_uses_flags_that_bin_train_defines():
  """A misspelt flag in a flagfile would stop bin/train at start-up."""
  source = open(os.path.join(ROOT, "bin/train")).read()
  defined = set(re.findall(r'flags\.DEFINE_\w+\(\s*"(\w+)"', source))
  assert {"model", "lr_boundaries", "lr_values"} <= defined
  configs = glob.glob(os.path.join(ROOT, "configs", "*.cfg"))
  assert configs
  for path in configs:
    for line in open(path):
      if line.startswith("--"):
        name = line[2:].split("=")[0].strip()
        assert name in defined or (name.startswith("no") and
                                   name[2:] in defined), (path, name)


def test_run_from_before_an_added_argument_resumes(tmp_path):
  """A run whose config.json predates an argument the model gained since
  (factorized's num_layers, latent_channels) resumes when the new argument
  has its default; another value is another architecture."""
  from tflic import train  # pylint: disable=import-outside-toplevel
  run_dir = f"{tmp_path}/run"
  train.train("factorized", dict(num_filters=8), "samples", run_dir, steps=0)
  train.train("factorized", dict(num_filters=8, num_layers=3,
                                 latent_channels=None), "samples", run_dir,
              steps=0)
  with pytest.raises(ValueError, match="use another --model_dir"):
    train.train("factorized", dict(num_filters=8, num_layers=4), "samples",
                run_dir, steps=0)


def test_run_from_before_latent_codecs_resumes(tmp_path):
  """A joint run that an earlier release trained for 2 steps (optimizer
  state included, tests/golden/legacy_run) loads, and resumes at its step
  with every weight and the optimizer's state in place (same shapes, in the
  old order)."""
  import shutil  # pylint: disable=import-outside-toplevel
  from tflic import train  # pylint: disable=import-outside-toplevel
  run_dir = str(tmp_path / "run")
  shutil.copytree(os.path.join(ROOT, "tests", "golden", "legacy_run"), run_dir)
  reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(run_dir))
  model = train.load(run_dir)
  kernel = model.latent_codec.y_codec.parameters.contexts[0][0].kernel
  np.testing.assert_array_equal(kernel.numpy(), reader.get_tensor(
      "model/context_model/kernel/.ATTRIBUTES/VARIABLE_VALUE"))
  config = train.read_config(run_dir)
  model = train.train(config["model"], config["args"], "samples", run_dir,
                      steps=3, batch_size=2, patch_size=64, checkpoint_every=3,
                      log_every=1)
  assert int(model.optimizer.iterations) == 3
  assert tf.train.latest_checkpoint(run_dir).endswith("ckpt-3")


# Sequentials of convolutions and GDN only: fast for the others.
_PLAIN_TRANSFORMS = ("factorized", "hyperprior", "joint", "ms2020")


def _first_variant(name):
  from tests.golden import make as golden  # pylint: disable=import-outside-toplevel
  return next(args for model, args in golden.VARIANTS.values() if model == name)


@pytest.mark.parametrize("name", [
    pytest.param(n, marks=pytest.mark.slow) if n in _PLAIN_TRANSFORMS else n
    for n in models.names()])
def test_mixed_bfloat16_transforms_float32_elsewhere(name):
  """Every model trains in mixed_bfloat16 (the default where bfloat16 is
  native): every convolution of g_a and g_s, those that composite layers
  (residual blocks, attention, sub-pixel) make in `build` too, computes in
  bfloat16 with float32 variables; GDN/GSDN and the latent codec in
  float32."""
  from tflic import train  # pylint: disable=import-outside-toplevel
  model = train.build(name, _first_variant(name), precision_="mixed_bfloat16")
  layers = [l for t in (model.analysis, model.synthesis)
            for l in [t] + list(t.submodules)]
  convs = [l for l in layers if isinstance(l, tf.keras.layers.Conv2D)]
  assert convs and all(l.compute_dtype == "bfloat16" and
                       l.variable_dtype == "float32" for l in convs)
  assert all(l.compute_dtype == "float32" for l in layers
             if isinstance(l, (tfc.GDN, GSDN)))
  assert model.latent_codec.compute_dtype == "float32"
  model.compile(optimizer=tf.keras.optimizers.Adam(1e-3))
  logs = model.train_step(tf.random.stateless_uniform([2, 64, 64, 3], [1, 1]))
  assert np.isfinite(float(logs["loss"])) and not float(logs["nonfinite"])


def test_mixed_bfloat16_exports_float32():
  """The exported codec is float32 (its files those of the weights)."""
  from tflic import codec as codec_lib  # pylint: disable=import-outside-toplevel
  from tflic import precision  # pylint: disable=import-outside-toplevel
  from tflic import train  # pylint: disable=import-outside-toplevel
  model = train.build("hyperprior", dict(num_filters=8, latent_channels=8,
                                         hyper_channels=8),
                      precision_="mixed_bfloat16")
  codec = codec_lib.Codec(model)
  assert codec.model.analysis.layers[0].compute_dtype == "float32"
  image = np.zeros((32, 48, 3), np.uint8)
  assert codec.decode(codec.encode(image)["bitstream_bytes"])[
      "image"].shape == (32, 48, 3)
  assert precision.resolve("auto") in ("float32", "mixed_bfloat16")


def test_auto_precision_is_bfloat16_where_onednn_computes_it(tmp_path,
                                                            monkeypatch):
  """--precision=auto: bfloat16 on a CPU with AMX or AVX512-BF16, unless
  oneDNN is off (TensorFlow's own bfloat16 kernels are no faster than
  float32's)."""
  from tflic import precision  # pylint: disable=import-outside-toplevel
  if tf.config.list_physical_devices("GPU"):
    pytest.skip("the CPU's flags decide only without GPUs")
  cpuinfo = tmp_path / "cpuinfo"
  monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS", raising=False)
  for flags, native in (("fpu avx2 avx512f", False),
                        ("fpu avx512_bf16 amx_bf16 amx_tile", True),
                        ("fpu avx512_bf16", True)):
    cpuinfo.write_text(f"processor\t: 0\nflags\t\t: {flags}\n")
    assert precision.native_bfloat16(str(cpuinfo))[0] == native, flags
  monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
  found, why = precision.native_bfloat16(str(cpuinfo))
  assert not found and "oneDNN is off" in why


@pytest.mark.parametrize("flagfile", sorted(glob.glob(
    os.path.join(ROOT, "configs", "*.cfg"))), ids=os.path.basename)
def test_every_flagfile_parses_into_a_model(flagfile, monkeypatch):
  """Each recipe in configs/ is bin/train's flags and makes its model (not
  built, not trained): a typo in a flagfile fails here, not in a user's
  first hour of training."""
  from tflic import train  # pylint: disable=import-outside-toplevel
  made = []

  def construct(model_name, model_args, train_data, model_dir, lmbda=.01,
                learning_rate=1e-4, lr_boundaries=(), lr_values=(), **unused):
    train.learning_rate_schedule(learning_rate, lr_boundaries, lr_values)
    made.append(models.create(model_name, lmbda=lmbda, **model_args))
  monkeypatch.setattr(train, "train", construct)
  result = tool(["bin/train", f"--flagfile={flagfile}"])
  assert result.returncode == 0, result.stderr
  assert len(made) == 1


def test_pytorch_initializer_draws_within_one_over_root_fan_in(tmp_path):
  from tflic import train  # pylint: disable=import-outside-toplevel
  args = dict(num_filters=8, latent_channels=12, hyper_channels=8)
  model = train.train("hyperprior", args, "samples", str(tmp_path), steps=0,
                      seed=3, initializer="pytorch")
  # fan_in as PyTorch counts it: a transposed convolution's output channels.
  for layer, fan_in in ((model.analysis.layers[0], 25 * 3),
                        (model.synthesis.layers[0], 25 * 8),
                        (model.latent_codec.h_s.layers[0], 25 * 12)):
    bound = 1 / np.sqrt(fan_in)
    for weights in (layer.kernel.numpy(), layer.bias.numpy()):
      assert np.abs(weights).max() <= bound
      assert np.abs(weights).max() > .8 * bound  # uniform over the range
  glorot = train.build("hyperprior", args)
  before = [v.numpy() for v in glorot.trainable_variables]
  initializers.initialize(glorot, "glorot")
  for a, b in zip(before, glorot.trainable_variables):
    np.testing.assert_array_equal(a, b.numpy())
  assert not np.any(glorot.analysis.layers[0].bias.numpy())  # Keras's
  with pytest.raises(ValueError, match="initializer must be one of"):
    initializers.initialize(glorot, "he")
