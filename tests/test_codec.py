"""The learned codec (`tflic.codec.Codec`): image ↔ bitstream through a
frozen copy of a model, padding and cropping, refusals, model identity."""

import numpy as np
import pytest
import tensorflow as tf

from tflic import bitstream
from tflic import codec as codec_lib
from tflic import images
from tflic import models
from tflic.models.base import to_uint8
from tests.conftest import TINY, padded, random_image, run
from tests.golden import make as golden


@pytest.fixture(scope="module")
def codec(codecs):
  return codecs("hyperprior")


def decode(codec, data):
  return bitstream.raise_bitstream_errors(
      lambda: codec.decode(tf.constant(data))["image"].numpy())


@pytest.mark.xdist_group("hyperprior")  # (on the worker that has its codec)
def test_decoder_gets_the_encoders_latents_and_image(codec, photo):
  model = codec.model
  x = padded(model, photo)
  streams, encoded = model.encode_latents(x)
  decoded = model.decode_latents(streams, *x.shape[1:3])
  for name in ("y_hat", "z_hat"):
    np.testing.assert_array_equal(encoded[name].numpy(), decoded[name].numpy())
  # The full codec gives the image the model's own synthesis makes of ŷ.
  image = decode(codec, codec.encode(photo)["bitstream_bytes"].numpy())
  height, width = photo.shape[:2]
  own = to_uint8(model.synthesis(encoded["y_hat"])[0, :height, :width])
  np.testing.assert_array_equal(image, own.numpy())
  np.testing.assert_array_equal(image, model.synthesize(
      decoded["y_hat"], uint8=True)[0, :height, :width].numpy())


def test_codec_does_not_change_the_model_it_is_given():
  """`Codec` codes with a frozen copy: the model stays trainable and
  unfrozen, and a second codec of it has the same identity."""
  model = golden.load("joint")
  weights = [v.numpy() for v in model.variables]
  first = codec_lib.Codec(model)
  assert model.latent_codec.y_codec.symbol_coder is None
  assert not hasattr(model.latent_codec, "integer_hyper")
  for value, variable in zip(weights, model.variables):
    np.testing.assert_array_equal(value, variable.numpy())
  assert first.model is not model
  assert (codec_lib.Codec(model).model_id.numpy() ==
          first.model_id.numpy())


@pytest.mark.parametrize("height, width", [(1, 1), (17, 33), (64, 64), (65, 3)])
@pytest.mark.xdist_group("hyperprior")  # (on the worker that has its codec)
def test_any_size_round_trips(codec, height, width):
  image = random_image(height, width, seed=height)
  data = codec.encode(image)["bitstream_bytes"].numpy()
  decoded = decode(codec, data)
  assert decoded.shape == (height, width, 3) and decoded.dtype == np.uint8
  np.testing.assert_array_equal(decode(codec, data), decoded)  # deterministic


@pytest.mark.slow
def test_large_image_round_trips():
  """4000×3000 through a tiny (untrained) model."""
  model = models.create("factorized", num_filters=4)
  model(tf.zeros([1, 16, 16, 3]))
  codec = codec_lib.Codec(model)
  image = np.zeros((4000, 3000, 3), np.uint8)
  image[::7] = 200
  data = codec.encode(image)["bitstream_bytes"].numpy()
  decoded = decode(codec, data)
  assert decoded.shape == image.shape


@pytest.mark.xdist_group("hyperprior")  # (on the worker that has its codec)
def test_stream_of_another_model_is_refused(codec, photo):
  other = models.create("hyperprior", **TINY)
  other(tf.zeros([1, 64, 64, 3]))
  other_codec = codec_lib.Codec(other)
  foreign = other_codec.encode(photo)["bitstream_bytes"].numpy()
  with pytest.raises(bitstream.BitstreamError, match="different model"):
    decode(codec, foreign)


@pytest.mark.xdist_group("hyperprior")  # (on the worker that has its codec)
def test_empty_image_is_refused(codec):
  with pytest.raises(tf.errors.InvalidArgumentError, match="empty"):
    codec.encode(np.zeros((0, 5, 3), np.uint8))


@pytest.mark.xdist_group("hyperprior")  # (on the worker that has its codec)
def test_image_too_large_for_the_format_is_refused(codec):
  """Refused before the transforms: the decoder would refuse its header."""
  with pytest.raises(tf.errors.InvalidArgumentError, match="too large"):
    codec.encode(np.zeros((1, 65536, 3), np.uint8))
  assert codec_lib.fits(8192, 8192) and not codec_lib.fits(8192, 8193)


def test_pad_repeats_edges():
  image = np.arange(2 * 3 * 1).reshape(2, 3, 1)
  padded = images.pad_to_multiple(image, 4).numpy()
  assert padded.shape == (4, 4, 1)
  np.testing.assert_array_equal(padded[:2, :3], image)
  np.testing.assert_array_equal(padded[3, 3], image[1, 2])


def test_pad_reflects():
  image = np.arange(3 * 5).reshape(3, 5, 1)
  padded = images.pad_to_multiple(image, 8, "reflect").numpy()[..., 0]
  assert padded.shape == (8, 8)
  np.testing.assert_array_equal(padded[:3, :5], image[..., 0])
  # Mirrored about the last row/column, which is not repeated; the padding is
  # longer than the image, so the mirror image is mirrored again.
  np.testing.assert_array_equal(padded[0], [0, 1, 2, 3, 4, 3, 2, 1])
  np.testing.assert_array_equal(padded[:, 0], [0, 5, 10, 5, 0, 5, 10, 5])
  assert padded[4, 6] == image[0, 2, 0] and padded[7, 7] == image[1, 1, 0]
  one = images.pad_to_multiple(np.full((1, 1, 3), 7), 64, "reflect").numpy()
  assert one.shape == (64, 64, 3) and (one == 7).all()
  two = images.pad_to_multiple(np.array([[[1], [2]]]), 6, "reflect").numpy()
  np.testing.assert_array_equal(two[0, :, 0], [1, 2, 1, 2, 1, 2])
  with pytest.raises(ValueError, match="mode"):
    images.pad_to_multiple(image, 8, "wrap")


def test_model_identity_ignores_training_state():
  model = golden.load("hyperprior")
  before = codec_lib.fingerprint(model)
  for tracker in model.trackers.values():
    tracker.update_state(123.)
  assert codec_lib.fingerprint(model) == before
  model.coding_variables()[0].assign_add(tf.ones_like(model.coding_variables()[0]))
  assert codec_lib.fingerprint(model) != before


def test_decoder_with_different_arithmetic_is_reported(photo):
  """A decoder whose entropy parameters differ from the encoder's (here: one
  parameter of the decoder's copy perturbed after the file was made) gives
  one clear error, never a silently wrong image."""
  codec = codec_lib.Codec(golden.load("hyperprior"))
  data = codec.encode(photo)["bitstream_bytes"].numpy()
  decode(codec, data)  # the unperturbed decoder accepts it
  layer = codec.model.latent_codec.integer_hyper[-1]
  # +3 output units (μ + 3/64) for the first channel, in accumulator units.
  step = 3 * 2 ** int(layer.shift[0]) // int(layer.multiplier[0])
  layer.bias.assign_add(tf.one_hot(0, layer.bias.shape[0], dtype=tf.int32) *
                        step)
  with pytest.raises(bitstream.BitstreamError, match="different arithmetic"):
    decode(codec, data)


# An absl program that imports tflic (or TensorFlow, then tflic) inside its
# main, in a shell without TF2_BEHAVIOR=1 (importing TensorFlow sets it, so
# the test's own children would inherit it): `tflic/__init__.py`.
_INSIDE_MAIN = """
import sys
from absl import app

def main(argv):
  if argv[1] == "tensorflow_first":
    import tensorflow
  from tflic import codec
  from tests.golden import make as golden
  for variant in argv[2:]:
    c = codec.Codec(golden.load(variant))
    for name, image in golden.images().items():
      data = c.encode(image)["bitstream_bytes"].numpy()
      expected = open(f"{golden.ROOT}/{variant}/{name}.tfl", "rb").read()
      assert data == expected, (variant, name)
      c.decode(data)["image"].numpy()  # the latent check passes
  print("coded", argv[2:])

app.run(main)
"""


def test_tflic_first_imported_inside_an_absl_main():
  """Golden streams (of a serial context model) by a program that imports
  tflic inside absl's app.run; one that imported TensorFlow there first is
  refused (at its first model) in one clear error, not given other files."""
  result = run(["-c", _INSIDE_MAIN, "tflic_first", "joint"],
               env=dict(TF2_BEHAVIOR=None))
  assert result.returncode == 0, result.stderr[-3000:]
  assert "coded ['joint']" in result.stdout
  result = run(["-c", _INSIDE_MAIN, "tensorflow_first", "joint"],
               env=dict(TF2_BEHAVIOR=None))
  assert result.returncode == 1
  assert result.stderr.strip().splitlines()[-1] == (
      "RuntimeError: TensorFlow was first imported inside absl's app.run "
      "without TF2_BEHAVIOR=1: its tf.functions would compute other "
      "transforms and files. Import tflic (or tensorflow) before app.run, "
      "or set TF2_BEHAVIOR=1 in the environment.")
