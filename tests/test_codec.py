"""Bit-exact coding with a trained model: latents, images, rate, any size."""

import numpy as np
import pytest
import tensorflow as tf

from tflic import bitstream
from tflic import codec as codec_lib
from tflic import models
from tflic import train
from tests.conftest import TINY, assert_rate_matches_estimate, random_image


@pytest.fixture(scope="module")
def codec(trained_dir):
  return codec_lib.Codec(train.load(trained_dir))


def decode(codec, data):
  return bitstream.raise_bitstream_errors(
      lambda: codec.decode(tf.constant(data))["image"].numpy())


def test_decoder_gets_the_encoders_latents_and_image(codec, photo):
  model = codec.model
  x = tf.cast(codec_lib.pad_to_multiple(photo, model.multiple, model.pad_mode),
              tf.float32)[None]
  streams, encoded = model.encode_latents(x / 255.)
  decoded = model.decode_latents(streams, *x.shape[1:3])
  for name in ("y_hat", "z_hat"):
    np.testing.assert_array_equal(encoded[name].numpy(), decoded[name].numpy())
  # The full codec gives the image the model's own synthesis makes of ŷ.
  image = decode(codec, codec.encode(photo)["bitstream_bytes"].numpy())
  height, width = photo.shape[:2]
  own = codec_lib.to_uint8(model.synthesis(encoded["y_hat"])[0, :height, :width])
  np.testing.assert_array_equal(image, own.numpy())
  np.testing.assert_array_equal(image, model.synthesize(
      decoded["y_hat"], uint8=True)[0, :height, :width].numpy())


def test_file_size_matches_the_estimated_rate(codec, photo):
  model = codec.model
  data = codec.encode(photo)["bitstream_bytes"].numpy()
  x = tf.cast(codec_lib.pad_to_multiple(photo, model.multiple, model.pad_mode),
              tf.float32)
  estimate = float(model.estimate_bits(x[None] / 255.)) / 8
  payload = len(data) - bitstream.header_bytes(model.num_streams)
  assert_rate_matches_estimate(payload, estimate)


@pytest.mark.parametrize("height, width", [(1, 1), (17, 33), (64, 64), (65, 3)])
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


def test_stream_of_another_model_is_refused(codec, photo):
  other = models.create("hyperprior", **TINY)
  other(tf.zeros([1, 64, 64, 3]))
  other_codec = codec_lib.Codec(other)
  foreign = other_codec.encode(photo)["bitstream_bytes"].numpy()
  with pytest.raises(bitstream.BitstreamError, match="different model"):
    decode(codec, foreign)


def test_empty_image_is_refused(codec):
  with pytest.raises(tf.errors.InvalidArgumentError, match="empty"):
    codec.encode(np.zeros((0, 5, 3), np.uint8))


def test_image_too_large_for_the_format_is_refused(codec):
  """Refused before the transforms: the decoder would refuse its header."""
  with pytest.raises(tf.errors.InvalidArgumentError, match="too large"):
    codec.encode(np.zeros((1, 65536, 3), np.uint8))
  assert codec_lib.fits(8192, 8192) and not codec_lib.fits(8192, 8193)


def test_pad_repeats_edges():
  image = np.arange(2 * 3 * 1).reshape(2, 3, 1)
  padded = codec_lib.pad_to_multiple(image, 4).numpy()
  assert padded.shape == (4, 4, 1)
  np.testing.assert_array_equal(padded[:2, :3], image)
  np.testing.assert_array_equal(padded[3, 3], image[1, 2])


def test_pad_reflects():
  image = np.arange(3 * 5).reshape(3, 5, 1)
  padded = codec_lib.pad_to_multiple(image, 8, "reflect").numpy()[..., 0]
  assert padded.shape == (8, 8)
  np.testing.assert_array_equal(padded[:3, :5], image[..., 0])
  # Mirrored about the last row/column, which is not repeated; the padding is
  # longer than the image, so the mirror image is mirrored again.
  np.testing.assert_array_equal(padded[0], [0, 1, 2, 3, 4, 3, 2, 1])
  np.testing.assert_array_equal(padded[:, 0], [0, 5, 10, 5, 0, 5, 10, 5])
  assert padded[4, 6] == image[0, 2, 0] and padded[7, 7] == image[1, 1, 0]
  one = codec_lib.pad_to_multiple(np.full((1, 1, 3), 7), 64, "reflect").numpy()
  assert one.shape == (64, 64, 3) and (one == 7).all()
  two = codec_lib.pad_to_multiple(np.array([[[1], [2]]]), 6, "reflect").numpy()
  np.testing.assert_array_equal(two[0, :, 0], [1, 2, 1, 2, 1, 2])
  with pytest.raises(ValueError, match="mode"):
    codec_lib.pad_to_multiple(image, 8, "wrap")


def test_model_identity_ignores_training_state(trained_dir):
  model = train.load(trained_dir)
  before = codec_lib.fingerprint(model)
  for tracker in model.trackers.values():
    tracker.update_state(123.)
  assert codec_lib.fingerprint(model) == before
  model.coding_variables()[0].assign_add(tf.ones_like(model.coding_variables()[0]))
  assert codec_lib.fingerprint(model) != before


def test_decoder_with_different_arithmetic_is_reported(trained_dir, photo):
  """A decoder whose entropy parameters differ from the encoder's (here: one
  parameter of the decoder's copy perturbed after the file was made) gives
  one clear error, never a silently wrong image."""
  codec = codec_lib.Codec(train.load(trained_dir))
  data = codec.encode(photo)["bitstream_bytes"].numpy()
  decode(codec, data)  # the unperturbed decoder accepts it
  layer = codec.model.parameter_path.integer_hyper[-1]
  # +3 output units (μ + 3/64) for the first channel, in accumulator units.
  step = 3 * 2 ** int(layer.shift[0]) // int(layer.multiplier[0])
  layer.bias.assign_add(tf.one_hot(0, layer.bias.shape[0], dtype=tf.int32) *
                        step)
  with pytest.raises(bitstream.BitstreamError, match="different arithmetic"):
    decode(codec, data)
