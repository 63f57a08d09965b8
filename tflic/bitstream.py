"""The tflic container format, read and written inside the TensorFlow graph (so
the SavedModel signatures produce and read exactly the files the binaries do).

Layout, integers big-endian:

  magic "TFLC" (4) | format version (1) | model id (8) | height (4) | width (4)
  | latent check (8) | number of streams n (1) | n stream lengths (4 each)
  | the n streams | check (8): keyed SipHash-2-4 of everything before it

Unpacking verifies, in this order, before any other work: length, magic,
version, check, model id, stream count and lengths, image size. After decoding,
the codec compares the latent check (a keyed hash of every quantized latent the
encoder coded, `latent_check`) with the latents it reconstructed: a decoder
whose arithmetic differs from the encoder's is reported, never turned into a
silently wrong image. A failure raises `tf.errors.InvalidArgumentError` whose
message starts with `MARKER`; the Python API turns it into `BitstreamError`.

Version 2 added the latent check. Version 3 codes escaped symbols with a
bounded code (`entropy/escape.py`): a forged version-2 stream could make
the range decoder loop forever. Older versions are refused by version (a
version-2 file decodes with the SavedModel that wrote it).
"""

import tensorflow as tf

MAGIC = b"TFLC"
VERSION = 3
MODEL_ID_BYTES = 8
MODEL_ID_AT = len(MAGIC) + 1  # after the magic and the version
CHECK_BYTES = 8
LATENT_CHECK_BYTES = 8
MARKER = "tflic bitstream error: "
MAX_SIDE = 65535
MAX_PIXELS = 1 << 26  # 67 MP; a header claiming more is refused before decoding.
_SIPHASH_KEY = [0x74666c6963626974, 0x73747265616d3031]  # "tflicbitstream01"
_LATENT_KEY = [0x74666c69636c6174, 0x656e747330303032]  # "tflicclatents002"
_LATENT_AT = len(MAGIC) + 1 + MODEL_ID_BYTES + 4 + 4  # 21
_FIXED = _LATENT_AT + LATENT_CHECK_BYTES + 1  # 30 bytes before the lengths
LATENT_MISMATCH = (
    "the decoded latents differ from the encoded ones (latent check failed): "
    "the file was decoded under a different arithmetic than it was encoded "
    "with")


class BitstreamError(ValueError):
  """A bitstream that is not a valid tflic stream for this model."""


def header_bytes(num_streams):
  """Bytes of a container besides its streams."""
  return _FIXED + 4 * num_streams + CHECK_BYTES


def _byte_table():
  return tf.constant([bytes([i]) for i in range(256)])


def be_bytes(value, size):
  """Big-endian bytes of an integer tensor, as a string."""
  value = tf.cast(value, tf.int64)
  shifts = tf.constant([8 * (size - 1 - i) for i in range(size)], tf.int64)
  digits = tf.bitwise.bitwise_and(tf.bitwise.right_shift(value, shifts), 255)
  return tf.strings.reduce_join(tf.gather(_byte_table(), digits))


def _be_int(data, pos, size):
  """The big-endian integer of data[pos:pos + size]."""
  digits = tf.cast(tf.io.decode_raw(tf.strings.substr(data, pos, size), tf.uint8),
                   tf.int64)
  shifts = tf.constant([8 * (size - 1 - i) for i in range(size)], tf.int64)
  return tf.reduce_sum(tf.bitwise.left_shift(digits, shifts))


def check_value(payload):
  """63 bits of keyed SipHash-2-4 of the payload (detects any damage with
  probability 1 − 2⁻⁶³; TensorFlow has no CRC op, and this one is stronger)."""
  return tf.strings.to_hash_bucket_strong(payload, (1 << 63) - 1, _SIPHASH_KEY)


def latent_check(latents):
  """63 bits of keyed SipHash-2-4 of the bit patterns of `latents` (a list
  of tensors, e.g. [ẑ, ŷ] as the synthesis receives them), byte order
  independent of the machine."""
  parts = []
  for latent in latents:
    bits = tf.reshape(tf.bitcast(tf.cast(latent, tf.float32), tf.int32), [-1, 1])
    shifts = tf.constant([[24, 16, 8, 0]], tf.int32)
    parts.append(tf.reshape(tf.cast(tf.bitwise.bitwise_and(
        tf.bitwise.right_shift(bits, shifts), 255), tf.uint8), [-1]))
  data = tf.io.serialize_tensor(tf.concat(parts, 0))
  return tf.strings.to_hash_bucket_strong(data, (1 << 63) - 1, _LATENT_KEY)


def pack(model_id, height, width, streams, latents_check):
  """Builds the container (a scalar string) from its parts; `latents_check`
  is `latent_check` of the coded latents."""
  parts = [tf.constant(MAGIC), be_bytes(VERSION, 1), model_id,
           be_bytes(height, 4), be_bytes(width, 4),
           be_bytes(latents_check, LATENT_CHECK_BYTES),
           be_bytes(len(streams), 1)]
  parts += [be_bytes(tf.strings.length(s), 4) for s in streams]
  payload = tf.strings.join(parts + list(streams))
  return payload + be_bytes(check_value(payload), CHECK_BYTES)


def stream_lengths(data):
  """The stream lengths of a container's header (bytes, read in Python, for
  measurements; decoding checks them)."""
  count = data[_FIXED - 1]
  return [int.from_bytes(data[_FIXED + 4 * i:_FIXED + 4 * i + 4], "big")
          for i in range(count)]


def require(condition, message):
  return tf.debugging.Assert(condition, [MARKER + message])


OUT_OF_RANGE = "a decoded latent is outside the range the encoder codes"


def within(values, low, high):
  """`values` (decoded symbols), after an error if any is outside [low,
  high]: a forged stream can name symbols that no encoder writes."""
  with tf.control_dependencies([require(
      tf.reduce_all((values >= low) & (values <= high)), OUT_OF_RANGE)]):
    return tf.identity(values)


def unpack(data, model_id, num_streams, max_pixels=MAX_PIXELS):
  """Verifies a container; returns (height, width, streams, latent check)."""
  data = tf.convert_to_tensor(data, tf.string)
  length = tf.strings.length(data)
  header_end = _FIXED + 4 * num_streams
  with tf.control_dependencies([require(
      length >= header_end + CHECK_BYTES,
      "too short to be a tflic bitstream (empty or truncated)")]):
    data = tf.identity(data)
  with tf.control_dependencies([require(
      tf.equal(tf.strings.substr(data, 0, 4), MAGIC),
      "not a tflic bitstream (bad magic bytes)")]):
    data = tf.identity(data)
  version = _be_int(data, 4, 1)
  with tf.control_dependencies([require(
      tf.equal(version, VERSION),
      f"unsupported format version (this tflic reads version {VERSION}; "
      "a file of version 2, from tflic 0.1, decodes with the SavedModel "
      "that wrote it)")]):
    data = tf.identity(data)
  payload = tf.strings.substr(data, 0, length - CHECK_BYTES)
  with tf.control_dependencies([require(
      tf.equal(check_value(payload), _be_int(data, length - CHECK_BYTES,
                                             CHECK_BYTES)),
      "damaged bitstream (integrity check failed)")]):
    data = tf.identity(data)
  with tf.control_dependencies([require(
      tf.equal(tf.strings.substr(data, MODEL_ID_AT, MODEL_ID_BYTES), model_id),
      "the bitstream was made by a different model")]):
    data = tf.identity(data)
  lengths = [_be_int(data, _FIXED + 4 * i, 4) for i in range(num_streams)]
  with tf.control_dependencies([require(
      tf.logical_and(
          tf.equal(_be_int(data, _FIXED - 1, 1), num_streams),
          tf.equal(tf.cast(header_end + CHECK_BYTES, tf.int64) + tf.add_n(lengths),
                   tf.cast(length, tf.int64))),
      "inconsistent stream lengths")]):
    data = tf.identity(data)
  height = _be_int(data, 13, 4)
  width = _be_int(data, 17, 4)
  ok = tf.reduce_all([height >= 1, width >= 1, height <= MAX_SIDE,
                      width <= MAX_SIDE, height * width <= max_pixels])
  with tf.control_dependencies([require(
      ok, f"image size out of range (1..{MAX_SIDE} per side, at most "
      f"{max_pixels} pixels)")]):
    data = tf.identity(data)
  streams, pos = [], tf.constant(header_end, tf.int64)
  for n in lengths:
    streams.append(tf.strings.substr(data, pos, n))
    pos += n
  expected = _be_int(data, _LATENT_AT, LATENT_CHECK_BYTES)
  return tf.cast(height, tf.int32), tf.cast(width, tf.int32), streams, expected


def verify_latents(expected, latents, output):
  """`output`, after checking that `latents` (as the decoder reconstructed
  them) have the latent check the encoder wrote."""
  with tf.control_dependencies([require(
      tf.equal(latent_check(latents), expected), LATENT_MISMATCH)]):
    return tf.identity(output)


def check_size(data, max_pixels):
  """Refuses, before any decoding, a container whose header claims an image
  of more than `max_pixels` pixels (a server's own limit, below MAX_PIXELS;
  everything else is checked in the graph)."""
  if len(data) >= _FIXED and data[:4] == MAGIC:
    height = int.from_bytes(data[13:17], "big")
    width = int.from_bytes(data[17:21], "big")
    if height * width > max_pixels:
      raise BitstreamError(
          f"image size {width}×{height} is over the limit of {max_pixels} "
          "pixels")


def raise_bitstream_errors(fn):
  """Calls fn(); an in-graph bitstream error becomes a `BitstreamError`."""
  try:
    return fn()
  except tf.errors.InvalidArgumentError as e:
    message = e.message
    if MARKER not in message:
      raise
    message = message[message.index(MARKER) + len(MARKER):]
    raise BitstreamError(message.splitlines()[0].strip().rstrip("'\"]")) from None
