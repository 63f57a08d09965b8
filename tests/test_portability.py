"""Portable files: every registered model's SavedModel (and SLIMD's)
codes in a fresh process (that imports only TensorFlow and
tensorflow-compression; its "serving_default" signature is "encode") under
another TensorFlow configuration (oneDNN on or off, 1 or 4 intra-op threads)
than the process that wrote or will read the files. Every file decodes to the
latents its encoder coded (the decoder's latent check passes); the images
differ at most by the float synthesis, and the largest difference is
printed.

The fast suite: the golden files (written with the defaults, which
test_golden's encoder reproduces in the suite's process) of four variants
(the serial loop; gain units on the hyperprior; the parallel slices; the
checkerboard's two passes) are encoded again and decoded in a fresh process
with oneDNN off and one intra-op thread. The slow one: the 4 × 4 matrix for
every variant (elic2022's groups, 21 s here, among them)."""

import itertools
import json
import os
import shutil

import numpy as np
import pytest

from tflic import data
from tflic import images
from tests.conftest import VARIANTS, run, variants
from tests.golden import make as golden

FAST = ["joint", "hyperprior_vr", "ms2020", "joint_checkerboard"]

CONFIGS = {
    "defaults": {},
    "onednn_off": {"TF_ENABLE_ONEDNN_OPTS": "0"},
    "threads_1": {"TFLIC_TEST_THREADS": "1"},
    "threads_4": {"TFLIC_TEST_THREADS": "4"},
}

# Runs in a fresh process: no tflic import, only TF + TFC.
_PROCESS = """
import glob, json, os, sys
import numpy as np
import tensorflow as tf
threads = int(os.environ.get("TFLIC_TEST_THREADS", "0"))
if threads:
  tf.config.threading.set_intra_op_parallelism_threads(threads)
import tensorflow_compression
assert "tflic" not in sys.modules
modes, exports, work, config = sys.argv[1:]
for name, path in json.loads(exports).items():
  model = tf.saved_model.load(path)
  if "encode" in modes:
    for image in sorted(glob.glob(os.path.join(work, "*.npy"))):
      data = model.signatures["encode"](image=tf.constant(np.load(image)))
      assert model.signatures["serving_default"](image=tf.constant(
          np.load(image)))["bitstream_bytes"].numpy() == data[
              "bitstream_bytes"].numpy()
      stem = os.path.basename(image)[:-4]
      with open(os.path.join(work, f"{name}.{stem}.{config}.tfl"), "wb") as f:
        f.write(data["bitstream_bytes"].numpy())
  if "decode" in modes:
    for path in sorted(glob.glob(os.path.join(work, f"{name}.*.tfl"))):
      with open(path, "rb") as f:
        data = f.read()
      try:
        image = model.signatures["decode"](bitstream_bytes=tf.constant(data))
        np.save(f"{path}.{config}.npy", image["image"].numpy())
      except tf.errors.InvalidArgumentError as e:
        open(f"{path}.{config}.error", "w").write(e.message)
"""


def _run(modes, config, exports, work):
  """Runs the fresh process: modes "encode", "decode" or both."""
  result = run(["-c", _PROCESS, modes, json.dumps(exports), work, config],
               env=CONFIGS[config])
  assert result.returncode == 0, result.stderr[-3000:]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
  """A photo crop and a noise image."""
  path = tmp_path_factory.mktemp("images")
  photo = images.read_image(data.samples_holdout())[0][100:196, 200:328]
  noise = np.random.default_rng(0).integers(0, 256, (64, 80, 3), np.uint8)
  np.save(path / "photo.npy", photo)
  np.save(path / "noise.npy", noise)
  return str(path)


def _check(exports, work, encoders, decoders):
  """Every file of `encoders` decodes under every one of `decoders`; returns
  the largest pixel difference between decoders of the same file."""
  largest = {}
  for name, encoder in itertools.product(exports, encoders):
    for stem in ("photo", "noise"):
      path = os.path.join(work, f"{name}.{stem}.{encoder}.tfl")
      decoded = []
      for decoder in decoders:
        error = f"{path}.{decoder}.error"
        assert not os.path.exists(error), (name, encoder, decoder,
                                           open(error).read())
        decoded.append(np.load(f"{path}.{decoder}.npy").astype(int))
      original = np.load(os.path.join(work, f"{stem}.npy"))
      assert decoded[0].shape == original.shape
      difference = max(int(np.abs(d - decoded[0]).max()) for d in decoded)
      largest[name] = max(largest.get(name, 0), difference)
  print("largest pixel difference between decoders (float synthesis):",
        largest)
  return largest


@pytest.mark.parametrize("variant", variants(FAST))
def test_golden_files_code_alike_without_onednn_on_one_thread(
    exports, variant, tmp_path):
  """A fresh process (oneDNN off, one thread) encodes the golden images to
  the golden files and decodes both to the golden images (±2)."""
  work = str(tmp_path)
  for stem, image in golden.images().items():
    np.save(os.path.join(work, f"{stem}.npy"), image)
    shutil.copy(os.path.join(golden.ROOT, variant, f"{stem}.tfl"),
                os.path.join(work, f"{variant}.{stem}.defaults.tfl"))
  _run("encode,decode", "onednn_off", {variant: exports[variant]}, work)
  for stem in golden.images():
    coded = os.path.join(work, f"{variant}.{stem}")
    assert (open(f"{coded}.onednn_off.tfl", "rb").read() ==
            open(f"{coded}.defaults.tfl", "rb").read()), stem
    expected = images.read_image(
        os.path.join(golden.ROOT, variant, f"{stem}.png"))[0]
    for encoder in ("defaults", "onednn_off"):
      error = f"{coded}.{encoder}.tfl.onednn_off.error"
      assert not os.path.exists(error), open(error).read()
      decoded = np.load(f"{coded}.{encoder}.tfl.onednn_off.npy")
      difference = np.abs(decoded.astype(int) - expected).max()
      print(f"{variant} {stem}: largest pixel difference {difference}")
      assert difference <= 2, (stem, difference)


@pytest.mark.slow
def test_configuration_matrix(exports, work):
  exports = {variant: exports[variant] for variant in VARIANTS}
  for config in CONFIGS:
    _run("encode", config, exports, work)
  for config in CONFIGS:
    _run("decode", config, exports, work)
  largest = _check(exports, work, list(CONFIGS), list(CONFIGS))
  assert max(largest.values()) <= 2, largest


_MODEL_IDS = """
from tests.golden import make
from tflic import codec
for variant in make.VARIANTS:
  print(variant, codec.Codec(make.load(variant)).model_id.numpy().hex())
"""


@pytest.mark.slow
def test_golden_models_freeze_alike_with_other_simd(codecs):
  """Exporting is a function of the checkpoint: every golden model freezes
  to the same tables (model identity) with oneDNN limited to AVX2 and with
  numpy's AVX-512 kernels off (its vectorized exp and sums), as with the
  defaults. (On a machine without AVX-512 both runs repeat the defaults.)"""
  # pylint: disable-next=import-outside-toplevel
  from numpy.core._multiarray_umath import __cpu_dispatch__, __cpu_features__
  avx512 = [f for f in __cpu_dispatch__
            if f.startswith("AVX512") and __cpu_features__.get(f)]
  expected = {v: codecs(v).model_id.numpy().hex() for v in golden.VARIANTS}
  for env in (dict(ONEDNN_MAX_CPU_ISA="AVX2"),
              dict(NPY_DISABLE_CPU_FEATURES=" ".join(avx512) or None)):
    result = run(["-c", _MODEL_IDS], env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    assert dict(l.split() for l in result.stdout.splitlines()) == expected, env
