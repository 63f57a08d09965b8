"""SavedModel export: tag `serve`; signatures `encode` (image uint8 [H, W, 3] →
bitstream_bytes), `decode` (bitstream_bytes → image), `serving_default`
(= encode) and, for a variable-rate model, `encode_at_quality` (image,
quality 0 … 100 → bitstream_bytes). Loading needs TensorFlow and `import
tensorflow_compression`."""

import json
import os
import shutil
import tempfile

import tensorflow as tf
import tensorflow_compression  # pylint: disable=unused-import  (registers ops)

from tflic import codec as codec_lib
from tflic import images

INFO_FILE = os.path.join("assets.extra", "tflic.json")
# How an export stores the float weights no signature uses (the networks
# whose integer form codes: h_s, the entropy parameters; the factorized
# prior's density): kept for `bin/train --init_from` only.
TRAINING_WEIGHTS = {
    "float32": "as trained (--init_from continues exactly)",
    "bfloat16": "half their bytes (--init_from starts within bfloat16's "
                "rounding, 2^-9 relative)",
    "none": "left out (--init_from gets only what coding uses)",
}


def _store_training_weights(codec, signatures, dtype):
  """Moves the trainable weights that none of `signatures` uses out of
  `codec.model_variables`; with bfloat16 they are kept, cast, as
  `codec.training_weights` (same names)."""
  if dtype == "float32":
    return
  used = {id(v) for f in signatures for v in f.get_concrete_function().variables}
  unused = [v for v in codec.model_variables
            if v.trainable and id(v) not in used]
  codec.model_variables = [v for v in codec.model_variables
                           if not v.trainable or id(v) in used]
  if dtype == "bfloat16":
    codec.training_weights = [
        tf.Variable(tf.cast(v, tf.bfloat16), trainable=False,
                    name=v.name.split(":")[0]) for v in unused]


def _check(export_dir, overwrite, training_weights):
  """export_dir, absolute, if the arguments are valid."""
  if training_weights not in TRAINING_WEIGHTS:
    raise ValueError(f"training weights {training_weights!r}: expected one of "
                     f"{', '.join(TRAINING_WEIGHTS)}")
  export_dir = os.path.abspath(export_dir)
  if os.path.exists(export_dir) and not overwrite:
    raise FileExistsError(f"{export_dir} exists (pass --overwrite to replace it)")
  return export_dir


def export(model, export_dir, overwrite=False, name=None, calibration=None,
           memory_budget=codec_lib.MEMORY_BUDGET, training_weights="float32"):
  """Writes the SavedModel of a trained model to export_dir, atomically (the
  directory appears complete or not at all). `calibration`: images for the
  integer conversion of the entropy parameters; `memory_budget`: bytes that
  coding an image of any size may use (see `codec.Codec`);
  `training_weights`: see TRAINING_WEIGHTS."""
  _check(export_dir, overwrite, training_weights)  # before the Codec's work
  return save(codec_lib.Codec(model, calibration, memory_budget), export_dir,
              overwrite, name, training_weights)


def save(codec, export_dir, overwrite=False, name=None,
         training_weights="float32"):
  """`export` of a `codec.Codec` (its functions as already traced; with
  `training_weights` other than float32, the codec keeps the stored form)."""
  export_dir = _check(export_dir, overwrite, training_weights)
  model = codec.model  # frozen, with its tiles
  slimd = model.slimd  # SLIMD's tile, alphabet, entries
  parent = os.path.dirname(export_dir)
  os.makedirs(parent, exist_ok=True)
  tmp = tempfile.mkdtemp(prefix=".export-", dir=parent)
  try:
    signatures = {"encode": codec.encode, "decode": codec.decode,
                  "serving_default": codec.encode}
    if model.levels:
      signatures["encode_at_quality"] = codec.encode_at_quality
    _store_training_weights(codec, set(signatures.values()), training_weights)
    tf.saved_model.save(codec, tmp, signatures=signatures)
    info = dict(name=name, config=model.get_config(), model=type(model).__name__,
                model_id=bytes(codec.model_id.numpy()).hex(),
                multiple=model.multiple, pad_mode=model.pad_mode,
                num_streams=model.num_streams,
                levels=model.gain_units.lmbdas if model.gain_units else None,
                memory_budget=codec.memory_budget,
                slimd=slimd.get_config() if slimd else None,
                tiles=model.tiles)
    os.makedirs(os.path.join(tmp, "assets.extra"), exist_ok=True)
    with open(os.path.join(tmp, INFO_FILE), "w") as f:
      json.dump(info, f, indent=2)
    os.chmod(tmp, 0o777 & ~images.umask())  # mkdtemp makes 0700
    if os.path.exists(export_dir):
      shutil.rmtree(export_dir)
    os.rename(tmp, export_dir)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise
  return export_dir


def info(export_dir):
  """What tflic wrote about an exported model (name, config, model id)."""
  with open(os.path.join(export_dir, INFO_FILE)) as f:
    return json.load(f)
