"""The contract every model keeps, over the registry (every model and
variant, as its golden checkpoint): exact round trips at any size, in bands
of any height; the serial decoder's stream equals the band encoder's; files
within the estimated rate; damaged streams refused. (The SavedModel of
every variant decoded in a fresh process under another TensorFlow
configuration: tests/test_portability.py.)"""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_compression as tfc

from tflic import bitstream
from tflic.entropy import autoregressive
from tflic.entropy import bands
from tests.conftest import (assert_exact_coding, assert_rate_matches_estimate,
                            padded, random_image, variants)

# The context codecs whose encoder works in bands (qian2021's encoder runs
# the serial loop itself: its search is incremental).
BANDED = ["cheng2020", "joint", "wen2019"]
# The fast suite's band tests: a hyper feature halo, the raster band
# encoder, the two passes, the pyramid; every variant in the slow suite.
BANDS_FAST = ["hyperprior_vr", "joint", "joint_checkerboard", "wen2019"]


@pytest.mark.parametrize("variant", variants())
def test_round_trips_exactly_at_any_size(codecs, variant, photo):
  """Files of a photo crop and of sizes of one pixel, odd sides and one
  that needs padding on both axes decode (the decoder's latents have the
  latent check the encoder wrote: a `BitstreamError` otherwise) to images
  of their size; the photo's file is within the estimated rate."""
  codec = codecs(variant)
  model = codec.model
  files = [(image, codec.encode(image)["bitstream_bytes"]) for image in (
      photo[:128, :192], random_image(1, 1, 3), random_image(17, 33, 3),
      random_image(70, 130, 3))]
  for image, data in files:
    assert codec.decode(data)["image"].shape == image.shape
  # SLIMD codes with other distributions than the prior the estimate is of.
  if model.slimd is None:
    image, data = files[0]
    streams = bitstream.unpack(data, codec.model_id, model.num_streams)[2]
    # (a variable-rate model's first stream, its quality, is not estimated)
    payload = sum(len(s.numpy()) for s in streams[bool(model.gain_units):])
    assert_rate_matches_estimate(
        payload, float(model.estimate_bits(padded(model, image))) / 8)


@pytest.mark.parametrize("variant", variants(fast=BANDS_FAST))
def test_bands_of_any_height(codecs, variant, monkeypatch):
  """Coding in bands of one latent row (and of a few, with a shorter last
  band) gives the latents of whole-image bands (the codec's file's latent
  check): the band protocol and the hyper features' halo are exact."""
  codec = codecs(variant)
  model = codec.model
  image = random_image(150, 100, 5)
  whole = bitstream.unpack(codec.encode(image)["bitstream_bytes"],
                           codec.model_id, model.num_streams)[3]
  for positions in (1, 3 * 8):  # latent width 7: rows of one, of three
    monkeypatch.setattr(bands, "POSITIONS", positions)
    banded = assert_exact_coding(model, padded(model, image), estimate=False,
                                 fresh=True)
    assert bitstream.latent_check(
        [banded[name] for name in sorted(banded)]).numpy() == whole.numpy()


@pytest.mark.parametrize("variant", variants(BANDED))
def test_band_encoder_writes_the_serial_stream(codecs, variant):
  """The encoder computes the integer parameters of bands of rows at once;
  its stream equals the one the position-by-position loop writes (the
  decoder's loop, run as an encoder)."""
  model = codecs(variant).model
  codec = model.latent_codec
  y = model.analyze(padded(model, random_image(150, 100, 7)))
  streams, latents = codec.encode(y)
  y_codec = codec.y_codec
  symbols = tf.cast(latents["y_hat"][0], tf.int32)
  scan = y_codec.parameters.serial(codec.psi_rows(latents["z_hat"]),
                                   symbols.shape[0], symbols.shape[1])
  handle = autoregressive.raster_scan(
      scan, y_codec.symbol_coder,
      tfc.create_range_encoder([], y_codec.symbol_coder.table),
      symbols.shape[0], symbols.shape[1], symbols)[0]
  assert tfc.entropy_encode_finalize(handle).numpy() == streams[-1].numpy()


@pytest.mark.parametrize("variant", variants())
def test_damaged_streams_are_refused(codecs, variant, photo):
  """A changed byte in a stream whose container check is made to match
  (anyone can: the keys are public) decodes to other latents, or fails
  to decode: a `BitstreamError` either way, never a silently other image."""
  codec = codecs(variant)
  data = codec.encode(photo[:64, :96])["bitstream_bytes"].numpy()
  num_streams = codec.model.num_streams
  height, width, streams, check = bitstream.unpack(data, codec.model_id,
                                                   num_streams)
  streams = [s.numpy() for s in streams]
  for index in range(num_streams):
    if not streams[index]:
      continue
    damaged = list(streams)
    position = len(damaged[index]) // 2
    damaged[index] = (damaged[index][:position] +
                      bytes([damaged[index][position] ^ 0x5a]) +
                      damaged[index][position + 1:])
    forged = bitstream.pack(codec.model_id, height, width, damaged, check)
    with pytest.raises(bitstream.BitstreamError):
      bitstream.raise_bitstream_errors(
          lambda: codec.decode(forged)["image"].numpy())
  tampered = bytearray(data)
  tampered[len(tampered) // 2] ^= 1
  with pytest.raises(bitstream.BitstreamError, match="integrity"):
    bitstream.raise_bitstream_errors(
        lambda: codec.decode(bytes(tampered))["image"].numpy())
