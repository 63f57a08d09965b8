"""The container: exact layout, and one clear error for every bad input."""

import numpy as np
import pytest
import tensorflow as tf

from tflic import bitstream

MODEL_ID = b"\x01\x02\x03\x04\x05\x06\x07\x08"
STREAMS = [b"first stream", b"\x00\xff" * 20]


LATENTS = [tf.constant([[1.5, -2.]]), tf.range(7.)]


def pack(height=17, width=33, streams=STREAMS, model_id=MODEL_ID):
  return bitstream.pack(tf.constant(model_id), height, width,
                        [tf.constant(s) for s in streams],
                        bitstream.latent_check(LATENTS)).numpy()


@tf.function(input_signature=[tf.TensorSpec([], tf.string)])
def _unpack(data):
  return bitstream.unpack(data, tf.constant(MODEL_ID), len(STREAMS))


def unpack(data):
  return bitstream.raise_bitstream_errors(lambda: _unpack(tf.constant(data)))


def test_layout_and_round_trip():
  data = pack()
  assert data[:4] == b"TFLC" and data[4] == 3 and data[5:13] == MODEL_ID
  assert int.from_bytes(data[13:17], "big") == 17
  assert int.from_bytes(data[17:21], "big") == 33
  assert int.from_bytes(data[21:29], "big") == bitstream.latent_check(LATENTS)
  assert data[29] == 2
  assert int.from_bytes(data[30:34], "big") == len(STREAMS[0])
  assert len(data) == 30 + 4 * 2 + sum(map(len, STREAMS)) + 8
  assert len(data) == bitstream.header_bytes(2) + sum(map(len, STREAMS))
  height, width, streams, check = unpack(data)
  assert (int(height), int(width)) == (17, 33)
  assert [s.numpy() for s in streams] == STREAMS
  # The decoder's latents pass the check; any other bit pattern fails it.
  assert bitstream.verify_latents(check, LATENTS, tf.constant(1)) == 1
  for other in ([tf.constant([[1.5, -2.]]), tf.range(1., 8.)],
                [tf.constant([[1.5, -2.0000002]]), tf.range(7.)],
                [tf.range(7.), tf.constant([[1.5, -2.]])]):
    with pytest.raises(bitstream.BitstreamError, match="different arithmetic"):
      bitstream.raise_bitstream_errors(
          lambda: bitstream.verify_latents(check, other, tf.constant(1)))


def with_version(version):
  """A container of another format version, with a valid integrity check."""
  data = bytearray(pack())
  data[4] = version
  payload = bytes(data[:-8])
  return payload + bitstream.be_bytes(
      bitstream.check_value(payload), 8).numpy()


@pytest.mark.parametrize("version", [1, 2])
def test_older_versions_are_refused_by_version(version):
  """Version 2 coded escapes with the range coder's unbounded gamma code,
  which a forged stream could turn into an endless loop."""
  with pytest.raises(bitstream.BitstreamError,
                     match="unsupported format version.*SavedModel that "
                     "wrote it"):
    unpack(with_version(version))


@pytest.mark.parametrize("data, message", [
    (b"", "too short"),
    (b"TFLC", "too short"),
    (b"PNG\x00" + bytes(60), "bad magic"),
])
def test_short_or_foreign(data, message):
  with pytest.raises(bitstream.BitstreamError, match=message):
    unpack(data)


def test_every_truncation_is_refused():
  data = pack()
  for length in range(len(data)):
    with pytest.raises(bitstream.BitstreamError):
      unpack(data[:length])


def test_every_flipped_byte_is_refused():
  data = pack()
  for i in range(len(data)):
    damaged = bytearray(data)
    damaged[i] ^= 0x10
    with pytest.raises(bitstream.BitstreamError):
      unpack(bytes(damaged))


def test_random_bytes_are_refused():
  rng = np.random.default_rng(0)
  for length in (1, 30, 100, 5000):
    with pytest.raises(bitstream.BitstreamError):
      unpack(rng.integers(0, 256, length, dtype=np.uint8).tobytes())


def test_stream_of_another_model():
  with pytest.raises(bitstream.BitstreamError, match="different model"):
    unpack(pack(model_id=b"otherid!"))


def test_absurd_size_refused_before_decoding():
  with pytest.raises(bitstream.BitstreamError, match="image size out of range"):
    unpack(pack(height=60000, width=60000))
  with pytest.raises(bitstream.BitstreamError, match="image size out of range"):
    unpack(pack(height=0, width=5))


def test_version_and_stream_count_checked():
  with pytest.raises(bitstream.BitstreamError, match="version"):
    unpack(with_version(9))
  with pytest.raises(bitstream.BitstreamError, match="inconsistent"):
    unpack(pack(streams=STREAMS + [b"a third stream"]))
