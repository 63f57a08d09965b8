"""The exported SavedModel, loaded in fresh processes that import only
tensorflow and tensorflow_compression: TF2 signatures and the TF1 loader."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from tflic import codec as codec_lib
from tflic import export
from tflic import train
from tests.conftest import random_image, run
from tests.golden import make as golden

# Runs in a fresh process: no tflic import, only TF + TFC.
_FRESH = """
import json, sys
import numpy as np
import tensorflow as tf
import tensorflow_compression
assert "tflic" not in sys.modules
export_dir, image_path, mode = sys.argv[1:]
image = np.load(image_path)
if mode == "tf2":
  model = tf.saved_model.load(export_dir)
  data = model.signatures["encode"](image=tf.constant(image))["bitstream_bytes"]
  assert model.signatures["serving_default"](image=tf.constant(image))[
      "bitstream_bytes"].numpy() == data.numpy()
  decoded = model.signatures["decode"](bitstream_bytes=data)["image"].numpy()
  data = data.numpy()
else:  # TF1 session, fed by the SignatureDef tensor names, as TF Serving runs it
  with tf.compat.v1.Session(graph=tf.Graph()) as sess:
    meta = tf.compat.v1.saved_model.loader.load(sess, ["serve"], export_dir)
    enc, dec = meta.signature_def["encode"], meta.signature_def["decode"]
    data = sess.run(enc.outputs["bitstream_bytes"].name,
                    {enc.inputs["image"].name: image})
    decoded = sess.run(dec.outputs["image"].name,
                       {dec.inputs["bitstream_bytes"].name: data})
np.save(image_path + ".out.npy", decoded)
open(image_path + ".bits", "wb").write(data)
"""


def _fresh(exported_dir, image, mode, tmp_path):
  path = str(tmp_path / f"image-{mode}.npy")
  np.save(path, image)
  result = run(["-c", _FRESH, exported_dir, path, mode])
  assert result.returncode == 0, result.stderr[-3000:]
  return open(path + ".bits", "rb").read(), np.load(path + ".out.npy")


@pytest.mark.xdist_group("joint")  # (on the worker that has its codec)
def test_serial_loop_runs_from_a_tf1_session(exports, tmp_path):
  """The serial decoder also runs from a TF1 session, as TF Serving runs it
  (the TF2 signatures of every model: test_portability)."""
  library = codec_lib.SavedCodec(exports["joint"])
  image = random_image(40, 90, seed=5)
  expected = library.encode(image)
  data, decoded = _fresh(exports["joint"], image, "tf1", tmp_path)
  assert data == expected
  np.testing.assert_array_equal(decoded, library.decode(expected))


@pytest.mark.slow  # the fast suite: test_portability (TF2), the joint (TF1)
def test_fresh_process_round_trips_bit_exactly(exported_dir, tmp_path):
  image = random_image(37, 70, seed=3)
  library = codec_lib.SavedCodec(exported_dir)
  expected_bits = library.encode(image)
  expected_image = library.decode(expected_bits)
  for mode in ("tf2", "tf1"):
    data, decoded = _fresh(exported_dir, image, mode, tmp_path)
    assert data == expected_bits, mode
    np.testing.assert_array_equal(decoded, expected_image)
    assert decoded.shape == image.shape and decoded.dtype == np.uint8


def test_signatures_and_info(exported_dir):
  library = codec_lib.SavedCodec(exported_dir)
  encode = library.loaded.signatures["encode"]
  decode = library.loaded.signatures["decode"]
  assert list(encode.structured_input_signature[1]) == ["image"]
  assert list(encode.structured_outputs) == ["bitstream_bytes"]
  assert list(decode.structured_input_signature[1]) == ["bitstream_bytes"]
  assert list(decode.structured_outputs) == ["image"]
  info = export.info(exported_dir)
  assert info["name"] == "hyperprior" and len(bytes.fromhex(info["model_id"])) == 8
  json.dumps(info)
  mask = os.umask(0)
  os.umask(mask)
  assert os.stat(exported_dir).st_mode & 0o777 == 0o777 & ~mask


@pytest.mark.xdist_group("joint")
@pytest.mark.parametrize("stored_as", [
    "bfloat16", pytest.param("none", marks=pytest.mark.slow)])
def test_training_weights_can_be_stored_smaller(exports, tmp_path, stored_as):
  """bin/export --training_weights: the float weights no signature uses
  (h_s, the context and the parameter network here, whose integer forms
  code) stored as trained, in bfloat16 or not at all. The SavedModel codes
  the same bytes; --init_from reads them back exactly, within bfloat16's
  rounding, or not."""
  name, args = golden.VARIANTS["joint"]
  model = golden.load("joint")
  with pytest.raises(ValueError, match="training weights 'float16'"):
    export.export(model, str(tmp_path / "x"), training_weights="float16")
  paths = {"float32": exports["joint"], stored_as: export.export(
      model, str(tmp_path / stored_as), training_weights=stored_as)}
  size = {w: sum(os.path.getsize(os.path.join(p, "variables", f))
                 for f in os.listdir(os.path.join(p, "variables")))
          for w, p in paths.items()}
  assert size[stored_as] < size["float32"], size
  image = random_image(48, 64, seed=4)
  saved = {w: codec_lib.SavedCodec(p) for w, p in paths.items()}
  assert saved["float32"].encode(image) == saved[stored_as].encode(image)
  coding = {w: {v.name for v in c.loaded.model_variables}
            for w, c in saved.items()}
  stored = coding["float32"] - coding[stored_as]
  assert stored == {v.name for v in getattr(
      saved[stored_as].loaded, "training_weights", [])} or stored_as == "none"
  assert any("h_s" in n for n in stored) and any("ep_" in n for n in stored)
  assert not any("analysis" in n or "synthesis" in n for n in stored)
  for weights, path in paths.items():
    # Names as in a fresh bin/train process (Keras numbers a second model's
    # layers in one process).
    tf.keras.backend.clear_session()
    fresh = train.build(name, args)
    initial = [v.numpy() for v in fresh.trainable_variables]
    train.load_weights(fresh, path)
    for trained, v, before in zip(model.trainable_variables,
                                  fresh.trainable_variables, initial,
                                  strict=True):
      if weights == "float32" or v.name not in stored:
        np.testing.assert_array_equal(v.numpy(), trained.numpy())
      elif weights == "bfloat16":
        np.testing.assert_allclose(v.numpy(), trained.numpy(), rtol=2 ** -8)
      else:
        np.testing.assert_array_equal(v.numpy(), before)
