"""The joint autoregressive model: exact serial coding (library and SavedModel
in a fresh process), any size, rate close to the model's estimate."""

import numpy as np
import pytest
import tensorflow as tf

from tflic import codec as codec_lib
from tflic import train
from tests.conftest import (assert_exact_coding,
                            assert_parallel_encoder_matches_serial,
                            random_image)
from tests.test_savedmodel import _fresh


@pytest.fixture(scope="module")
def codec(joint_dir):
  return codec_lib.Codec(train.load(joint_dir))


def test_decoder_gets_the_encoders_latents(codec, photo):
  model = codec.model
  x = tf.cast(codec_lib.pad_to_multiple(photo, 64), tf.float32)[None] / 255.
  assert_exact_coding(model, x)


@pytest.mark.parametrize("height, width", [(1, 1), (17, 33), (70, 130)])
def test_any_size_round_trips(codec, height, width):
  image = random_image(height, width, seed=width)
  data = codec.encode(image)["bitstream_bytes"]
  decoded = codec.decode(data)["image"].numpy()
  assert decoded.shape == (height, width, 3)
  x = tf.cast(codec_lib.pad_to_multiple(image, 64), tf.float32)[None] / 255.
  _, encoded = tf.function(codec.model.encode_latents)(x)
  expected = codec_lib.to_uint8(codec.model.synthesis(encoded["y_hat"])[0])
  np.testing.assert_array_equal(decoded, expected[:height, :width].numpy())


def test_savedmodel_in_a_fresh_process_tf1_loader(exports, tmp_path):
  """The serial loop also runs from a TF1 session, as TF Serving runs it
  (the TF2 signatures of every model: test_portability)."""
  library = codec_lib.SavedCodec(exports["joint"])
  image = random_image(40, 90, seed=5)
  expected = library.encode(image)
  data, decoded = _fresh(exports["joint"], image, "tf1", tmp_path)
  assert data == expected
  np.testing.assert_array_equal(decoded, library.decode(expected))



def test_parallel_encoder_writes_the_serial_encoders_stream(joint_dir):
  model = train.load(joint_dir)
  codec_lib.Codec(model)  # freezes
  assert_parallel_encoder_matches_serial(model, random_image(130, 200, seed=8))
