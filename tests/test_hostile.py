"""Hostile but well-formed streams: a valid container (its check keys are
public) around streams built with the library's own coders. Each ends in a
`BitstreamError` or an image, in bounded time, never in a wrapped value."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_compression as tfc

from tflic import bitstream
from tflic import codec as codec_lib
from tflic import train
from tflic.entropy import entropy_parameters
from tflic.entropy import escape
from tflic.entropy import integer_gaussian as ig
from tflic.latent_codecs import split_gaussian
from tests.conftest import TINY, run

FORGE = """
import sys, time
import numpy as np
import tensorflow as tf
from tflic import bitstream, train, codec as codec_lib
name, count = sys.argv[1], int(sys.argv[2])
codec = codec_lib.Codec(train.build(name, eval(sys.argv[3])))
rng = np.random.default_rng(7)
slowest = 0.
for i in range(count):
  side = lambda: int(rng.integers(1, 300))
  streams = [rng.integers(0, 256, int(rng.choice([0, 1, 3, 50, 2000])),
                          dtype=np.uint8).tobytes()
             for _ in range(codec.model.num_streams)]
  data = bitstream.pack(codec.model_id, side(), side(), streams,
                        tf.constant(0, tf.int64)).numpy()
  start = time.perf_counter()
  try:
    bitstream.raise_bitstream_errors(lambda: codec.decode(tf.constant(data)))
  except bitstream.BitstreamError:
    pass
  if i:  # the first call traces
    slowest = max(slowest, time.perf_counter() - start)
print("slowest", slowest)
"""


def forge(name, args, count, timeout):
  """Decodes `count` forged streams (random payloads of 0–2000 bytes,
  random sizes up to 299 × 299) in a fresh process; → the slowest decode's
  seconds. A hang fails at `timeout`."""
  result = run(["-c", FORGE, name, str(count), repr(args)], timeout=timeout)
  assert result.returncode == 0, result.stderr[-2000:]
  return float(result.stdout.split()[-1])


def test_forged_streams_end_quickly():
  assert forge("joint", dict(TINY), 12, 300) < 5.


@pytest.mark.slow
@pytest.mark.parametrize("name, args", [
    ("factorized", dict(num_filters=16)), ("hyperprior", TINY),
    ("joint", dict(TINY, latent_channels=192)),
    ("cheng2020", dict(num_filters=16)), ("qian2021", TINY),
    ("wen2019", TINY)])
def test_forged_streams_end_quickly_every_model(name, args):
  """The issue's case: `joint` at M = 192 hung on a 162 × 142 stream with a
  3-byte ẑ stream, in tensorflow-compression's gamma-escape decoder."""
  assert forge(name, args, 40, 1200) < 5.


def test_escape_decoding_is_bounded():
  """Under a row that is almost all escape, the two bytes 00 01 put the
  range decoder on the escape with nothing left to read: the range coder's
  own overflow decoding (format 2) loops forever there; the bounded escape
  decodes a symbol in [low, high]."""
  table = escape.EscapeTable([np.array([0, 1, 1 << 16])], -3, 3)
  for data in (b"\x00\x01", b"", b"\xff" * 9):
    handle = tfc.create_range_decoder(data, table.lookup()[0])
    _, symbols = table.decode(handle, tf.zeros([50], tf.int32),
                              tf.zeros([50], tf.int32))
    assert np.all((symbols.numpy() >= -3) & (symbols.numpy() <= 3))


def saturate(model):
  """Sets the integer heads of a frozen hyperprior or context model to
  μ = 0 and the largest scale everywhere, so that its range-coder rows hold
  symbols far beyond [−255, 256] (the largest σ reaches ±1024)."""
  codec = model.latent_codec
  if hasattr(codec.y_codec, "parameters"):
    path = codec.y_codec.parameters
    heads = [n[-1] for n in path.integer_networks]
    split = path.split
  else:
    heads, split = [codec.integer_hyper[-1]], split_gaussian
  kinds = entropy_parameters.kinds(split, sum(h.output_channels
                                              for h in heads))
  for head in heads:
    part, kinds = kinds[:head.output_channels], kinds[head.output_channels:]
    value = np.where(part == "log_scale", 255, 0)
    head.low.assign(value)
    head.high.assign(value)


def pack(codec, streams, height, width):
  return bitstream.pack(codec.model_id, height, width, streams,
                        tf.constant(0, tf.int64)).numpy()


def decode(codec, data):
  return bitstream.raise_bitstream_errors(
      lambda: codec.decode(tf.constant(data))["image"].numpy())


@pytest.fixture(scope="module")
def saturated():
  """Codecs of tiny untrained models whose heads `saturate`, by name."""
  codecs = {}

  def get(name):
    if name not in codecs:
      codecs[name] = codec_lib.Codec(train.build(name, TINY))
      saturate(codecs[name].model)
    return codecs[name]
  return get


@pytest.mark.parametrize("name, value", [
    ("hyperprior", 257), ("hyperprior", -1000), ("joint", 1000),
    ("joint", -256), ("wen2019", 1000)])
def test_symbols_beyond_the_coded_range_are_refused(saturated, name, value):
  """A stream whose ŷ symbol lies in its row but outside the range the
  encoder codes: refused, and in the serial decoder clipped before the
  context reads it (no int32 wrap-around in between)."""
  codec = saturated(name)
  latent_codec = codec.model.latent_codec
  x = tf.zeros([1, 64, 64, 3])
  z = latent_codec.h_a(codec.model.analyze(x))
  z_streams, z_latents = latent_codec.z_codec.encode(z)
  symbols = np.zeros([4, 4, codec.model.latent_channels], np.int32)
  symbols[1, 2, 3] = value
  coder = latent_codec.y_codec.symbol_coder
  handle = tfc.create_range_encoder([], coder.table)
  if name == "hyperprior":
    scale = tf.fill([symbols.size], ig.NUM_SCALES - 1)
    handle = coder.encode(handle, tf.reshape(symbols, [-1]),
                          tf.zeros_like(scale), scale)
  else:  # the band encoder, given the symbols (none clipped)
    y_codec = latent_codec.y_codec
    params = entropy_parameters.distribution(
        y_codec.parameters.split, y_codec.parameters.parallel_rows(
            tf.constant(symbols)[None], latent_codec.psi_rows(z_latents["z_hat"]),
            0, 4)[0])
    handle = coder.encode_positions(handle, tf.reshape(symbols, [16, -1]),
                                    *(tf.reshape(t, tf.concat([[16], tf.shape(
                                        t)[2:]], 0)) for t in params))
  data = pack(codec, z_streams + [tfc.entropy_encode_finalize(handle)],
              64, 64)
  with pytest.raises(bitstream.BitstreamError,
                     match="outside the range the encoder codes"):
    decode(codec, data)


def test_format_2_gamma_escapes_of_the_int32_edge_are_refused(saturated):
  """ẑ = ±10⁹ coded by tensorflow-compression's overflow code (what a
  format-2 stream could carry; its encoder loops forever from 2^31 on):
  the bounded decoder reads other symbols, within the prior's range, and
  the result is refused."""
  codec = saturated("hyperprior")
  prior = codec.model.latent_codec.z_codec
  z = np.zeros([1, 1, 1, prior.channels], np.float32)
  z[..., 0], z[..., 1] = 1e9, -1e9
  z_string = prior.entropy_model.compress(tf.constant(z))[0]
  data = pack(codec, [z_string, b""], 64, 64)
  with pytest.raises(bitstream.BitstreamError,
                     match="latent check|outside the range"):
    decode(codec, data)
