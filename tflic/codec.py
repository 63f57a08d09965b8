"""Image ↔ bitstream for a trained model, entirely in the TensorFlow graph: these
two `tf.function`s are the `encode` and `decode` signatures of the SavedModel."""

import hashlib
import json
import os

import numpy as np
import tensorflow as tf

from tflic import bitstream
from tflic import calibration as calibration_lib
from tflic import images
from tflic.layers import gain_units


MEMORY_BUDGET = 2 << 30  # bytes
TOO_LARGE = (f"the image is too large for the tflic format (at most "
             f"{bitstream.MAX_SIDE} pixels per side and {bitstream.MAX_PIXELS} "
             "pixels)")


def fits(height, width):
  """Whether the format can hold an image of this size (ints or tensors)."""
  return tf.logical_and(
      tf.maximum(height, width) <= bitstream.MAX_SIDE,
      tf.cast(height, tf.int64) * tf.cast(width, tf.int64) <= bitstream.MAX_PIXELS)


def fingerprint(model):
  """The model identity written into each stream: 8 bytes of SHA-256 over the
  model's class, configuration and every weight and coding table.

  Variable names and order are left out, and equal values count once: names
  depend on what the process created before (Keras and tensorflow-compression
  make them unique per process), and a model frozen twice still tracks its
  first, equal tables. So the same weights always give the same identity.
  Integers narrower than 32 bits count as int32 (the same values whatever
  width stores them)."""
  digest = hashlib.sha256()
  digest.update((model.identity or type(model).__name__).encode())
  digest.update(json.dumps(model.get_config(), sort_keys=True).encode())
  parts = set()
  for variable in model.coding_variables():
    value = np.ascontiguousarray(variable.numpy())
    if value.dtype.kind == "i" and value.dtype.itemsize < 4:
      value = value.astype(np.int32)
    parts.add(hashlib.sha256(
        f"{value.dtype}{value.shape}".encode() + value.tobytes()).digest())
  for part in sorted(parts):
    digest.update(part)
  return digest.digest()[:bitstream.MODEL_ID_BYTES]


class _Untracked:
  """Holds an object without making it part of the SavedModel."""

  def __init__(self, value):
    self.value = value


class Codec(tf.Module):
  """Codes uint8 RGB images [H, W, 3] with a trained `CompressionModel` (a
  copy of it, frozen: the model given is not changed).

  `calibration`: images for the integer conversion of the model's entropy
  parameters (see `calibration.py`; default: made images, fine for untrained
  models; pass photos like the training data for trained ones).
  `memory_budget`: bytes that coding an image of any size may use (g_a and
  g_s run over tiles, see `tiling`; None: whole images)."""

  def __init__(self, model, calibration=None, memory_budget=MEMORY_BUDGET,
               name="codec"):
    super().__init__(name=name)
    if calibration is None:
      calibration = calibration_lib.synthetic(model.multiple, model.pad_mode)
    model = model.clone()
    model.freeze(calibration)
    model.set_memory_budget(memory_budget)
    self.memory_budget = memory_budget
    # The SavedModel keeps the model's variables (weights and coding tables),
    # not the Keras model: saving that would trace every layer's `call`.
    self._model = _Untracked(model)
    self.model_variables = model.coding_variables()
    self.model_id = tf.Variable(fingerprint(model), trainable=False,
                                name="model_id")
    if model.levels:
      self.encode_at_quality = tf.function(
          self._encode_at_quality, autograph=False, input_signature=[
              tf.TensorSpec([None, None, 3], tf.uint8, name="image"),
              tf.TensorSpec([], tf.float32, name="quality")])

  @property
  def model(self):
    return self._model.value

  # The signatures are traced without autograph: the coding loops are
  # explicit tf.while_loops, and converting every function they call made
  # tracing (export, a first encode) two to four times slower.

  @tf.function(autograph=False, input_signature=[
      tf.TensorSpec([None, None, 3], tf.uint8, name="image")])
  def encode(self, image):
    """A variable-rate model: at its middle quality."""
    return self._encode(image)

  def _encode_at_quality(self, image, quality):
    """A variable-rate model at a quality of 0 … 100 (rate and quality grow
    with it; `layers.gain_units.level`): `encode_at_quality`, which only a
    variable-rate model's codec has (a SavedModel keeps every function)."""
    return self._encode(image, gain_units.level(quality, self.model.levels))

  def _encode(self, image, quality=None):
    shape = tf.shape(image)
    with tf.control_dependencies([
        tf.debugging.assert_positive(shape[:2], message="the image is empty"),
        tf.debugging.Assert(fits(shape[0], shape[1]), [TOO_LARGE])]):
      x = images.pad_to_multiple(image, self.model.multiple,
                                 self.model.pad_mode)
    streams, latents = self.model.encode_latents(x[None], quality)
    data = bitstream.pack(self.model_id, shape[0], shape[1], streams,
                          bitstream.latent_check(_ordered(latents)))
    return {"bitstream_bytes": data}

  @tf.function(autograph=False, input_signature=[
      tf.TensorSpec([], tf.string, name="bitstream_bytes")])
  def decode(self, bitstream_bytes):
    height, width, streams, check = bitstream.unpack(
        bitstream_bytes, self.model_id, self.model.num_streams)
    multiple = self.model.multiple
    latents = self.model.decode_latents(
        streams, -(-height // multiple) * multiple, -(-width // multiple) * multiple)
    image = self.model.synthesize(self.model.synthesis_input(latents),
                                  uint8=True)[
        0, :height, :width]
    return {"image": bitstream.verify_latents(check, _ordered(latents), image)}


def _ordered(latents):
  """The latents of a model's dict in a fixed order (by name)."""
  return [latents[name] for name in sorted(latents)]


SHIPPED = "tflic_shipped"  # export/NAME/VERSION of the default model


def shipped_models():
  """The shipped model's versions (SavedModels in export/ beside the
  package), newest first: bin/compress codes with the newest, bin/decompress
  decodes with the one that made the file (older files stay readable)."""
  root = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(
      __file__))), "export", SHIPPED)
  versions = sorted((int(v) for v in os.listdir(root) if v.isdigit())
                    if os.path.isdir(root) else [], reverse=True)
  if not versions:
    raise FileNotFoundError(f"the shipped model is not in {root}: give "
                            "--model=SAVEDMODEL_DIR")
  return [os.path.join(root, str(v)) for v in versions]


def shipped_model():
  """The newest shipped model, the default of bin/compress."""
  return shipped_models()[0]


class SavedCodec:
  """An exported model (SavedModel directory) used from Python: numpy images ↔
  bytes through its `encode`/`decode` signatures."""

  def __init__(self, export_dir):
    import tensorflow_compression  # pylint: disable=import-outside-toplevel,unused-import
    if not tf.saved_model.contains_saved_model(export_dir):
      raise FileNotFoundError(f"no SavedModel in {export_dir}")
    self.loaded = tf.saved_model.load(export_dir)
    try:
      self._encode = self.loaded.signatures["encode"]
      self._decode = self.loaded.signatures["decode"]
    except KeyError:
      raise ValueError(f"{export_dir} is not a tflic model (it has no "
                       "encode/decode signatures)") from None
    self._encode_at_quality = self.loaded.signatures.get("encode_at_quality")

  @property
  def variable_rate(self):
    """Whether the model takes a quality (`encode(image, quality)`)."""
    return self._encode_at_quality is not None

  def encode(self, image, quality=None):
    """uint8 [H, W, 3] → bytes; `quality` (0 … 100): a variable-rate
    model's rate (None: its middle quality)."""
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
      raise ValueError(f"expected a uint8 [H, W, 3] image, got {image.dtype} "
                       f"{image.shape}")
    if not image.size:
      raise ValueError("the image is empty")
    if not fits(*image.shape[:2]):
      raise ValueError(TOO_LARGE)
    if quality is None:
      return self._encode(image=tf.constant(image))["bitstream_bytes"].numpy()
    if not self.variable_rate:
      raise ValueError("this model has one rate: it takes no quality (train "
                       "one with bin/train --variable_rate)")
    low, high = gain_units.QUALITY_RANGE
    if not low <= quality <= high:
      raise ValueError(f"quality {quality} is outside {low:g} … {high:g}")
    return self._encode_at_quality(image=tf.constant(image), quality=tf.constant(
        float(quality)))["bitstream_bytes"].numpy()

  def decode(self, data, max_pixels=bitstream.MAX_PIXELS):
    """bytes → uint8 [H, W, 3]; a bad stream, or one whose image has more
    than `max_pixels` pixels (checked before decoding), raises
    `BitstreamError`."""
    bitstream.check_size(data, max_pixels)
    return bitstream.raise_bitstream_errors(
        lambda: self._decode(bitstream_bytes=tf.constant(data))["image"].numpy())
