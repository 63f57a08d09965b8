"""Tiled transforms equal the untiled ones; coding stays within a memory budget."""


import numpy as np
import pytest
import tensorflow as tf

from tflic import benchmark
from tflic import bitstream
from tflic import codec as codec_lib
from tflic import export
from tflic import models
from tflic import tiling
from tflic import train
from tflic.models.base import to_uint8
from tests.conftest import TINY, random_image, run, tool
from tests.golden import make as golden


# One model per kind of transforms (joint has the hyperprior's).
KINDS = [n for n in models.names() if n != "joint"]


def tiny(name):
  """A tiny model of `name`; "factorized-reflect": the factorized model
  with mirrored padding (its tiles must not mirror at a tile's border);
  "hyperprior-pytorch": g_a and g_s padded as PyTorch pads (centred)."""
  if name == "factorized-reflect":
    return train.build("factorized", dict(num_filters=8, padding="reflect"))
  if name == "hyperprior-pytorch":
    return train.build("hyperprior", dict(TINY, num_filters=8,
                                          transform_padding="pytorch"))
  if name in ("ms2020", "elic2022"):  # (slices and groups of 8 channels)
    return train.build(name, golden.VARIANTS[name][1])
  return train.build(name, dict(num_filters=8) if name in (
      "factorized", "cheng2020") else dict(TINY, num_filters=8))


def reach(gradient, centre):
  """How far (in rows) from `centre` the non-zero gradient extends."""
  rows = np.nonzero(np.abs(gradient).sum(axis=(0, 2, 3)))[0]
  return max(centre - rows.min(), rows.max() - centre)


def close(actual, expected):
  """Equal up to float32 rounding of values of this magnitude (the
  convolutions sum hundreds of products, in an order that differs between
  tiles and between CPUs)."""
  expected = np.asarray(expected)
  np.testing.assert_allclose(actual, expected, rtol=0,
                             atol=1e-5 * max(np.abs(expected).max(), 1.))


@pytest.mark.parametrize("name", KINDS + ["hyperprior-pytorch"])
def test_halo_covers_the_receptive_fields(name):
  model = tiny(name)
  n, c = 32, 16  # a border wide enough not to cut the fields short
  x = tf.random.stateless_uniform([1, n * 16, n * 16, 3], [1, 2])
  with tf.GradientTape() as tape:
    tape.watch(x)
    y = model.analysis(x)
    own = tf.reduce_sum(y[0, c, c])
  pixels = reach(tape.gradient(own, x).numpy(), c * 16 + 8)
  y_hat = tf.random.stateless_normal([1, n, n, model.latent_depth()], [3, 4])
  with tf.GradientTape() as tape:
    tape.watch(y_hat)
    own = tf.reduce_sum(model.synthesis(y_hat)[0, c * 16, c * 16])
  latents = reach(tape.gradient(own, y_hat).numpy(), c)
  assert -(-(pixels - 8) // 16) <= model.halo, pixels
  assert latents <= model.halo, latents


@pytest.mark.parametrize("name", KINDS + ["factorized-reflect",
                                  "hyperprior-pytorch"])
def test_tiled_transforms_equal_untiled(name):
  """Tiles of 4 latent positions, which do not divide 13 × 11."""
  model = tiny(name)
  x = tf.random.stateless_uniform([1, 13 * 16, 11 * 16, 3], [5, 6])
  y = model.finish_analysis(model.analysis(x))
  model.tiles = (4, 4)
  close(model.analyze(x), y)
  close(tf.function(model.analyze, autograph=False)(x), y)
  y_hat = tf.round(tf.random.stateless_normal(
      [1, 13, 11, model.latent_depth()], [7, 8]) * 10.)
  close(model.synthesize(y_hat), model.synthesis(y_hat))
  # uint8 in and out: cast per tile.
  image = tf.constant(random_image(13 * 16, 11 * 16))[None]
  close(model.analyze(image), model.finish_analysis(
      model.analysis(tf.cast(image, tf.float32) / 255.)))
  pixels = model.synthesize(y_hat, uint8=True).numpy().astype(int)
  expected = to_uint8(model.synthesis(y_hat)).numpy().astype(int)
  assert np.abs(pixels - expected).max() <= 1


def test_tile_follows_the_budget():
  model = tiny("hyperprior")
  per = tiling.bytes_per_position(model.synthesis, 16, 1,
                                  tiling.SYNTHESIS_OVERHEAD)
  small, large = (tiling.tile_for_budget(b, per, model.halo)
                  for b in (16 << 20, 64 << 20))
  assert tiling.MIN_TILE <= small < large
  assert (small + 2 * model.halo) ** 2 * per <= 16 << 20
  assert tiling.tile_for_budget(1, per, model.halo) == tiling.MIN_TILE
  model.set_memory_budget(None)
  assert model.tiles == (None, None)


def test_codec_with_small_tiles_round_trips(photo):
  """A budget that makes many tiles: the decoder reconstructs the encoder's
  latents (the latent check passes) and the untiled synthesis' image up to
  float rounding."""
  codec = codec_lib.Codec(golden.load("hyperprior"), memory_budget=4 << 20)
  model = codec.model
  assert max(model.tiles) < 20  # the photo has 40 × 28 latent positions
  data = codec.encode(photo)["bitstream_bytes"]
  image = codec.decode(data)["image"].numpy().astype(int)
  height, width, streams, _ = bitstream.unpack(data, codec.model_id, 2)
  padded = [-(-side // model.multiple) * model.multiple for side in photo.shape[:2]]
  y_hat = model.decode_latents(streams, *padded)["y_hat"]
  untiled = to_uint8(model.synthesis(y_hat))[0, :height, :width]
  assert np.abs(image - untiled.numpy().astype(int)).max() <= 1


def test_max_pixels_is_checked_before_decoding(exported_dir, tmp_path):
  saved = codec_lib.SavedCodec(exported_dir)
  data = saved.encode(random_image(40, 50))
  assert saved.decode(data, max_pixels=2000).shape == (40, 50, 3)
  with pytest.raises(bitstream.BitstreamError, match="over the limit of 1999"):
    saved.decode(data, max_pixels=1999)
  (tmp_path / "in.tfl").write_bytes(data)
  result = tool(["bin/decompress", f"--model={exported_dir}",
                 "--max_pixels=100", str(tmp_path / "in.tfl"),
                 str(tmp_path / "out.png")])
  assert result.returncode == 1, result.stderr
  assert "over the limit of 100 pixels" in result.stderr
  assert not (tmp_path / "out.png").exists()


PEAK_RSS = benchmark.PEAK_RSS  # (not ru_maxrss: the pytest worker's counts)

_PEAK = """
import sys
import numpy as np
from tflic import codec
saved = codec.SavedCodec(sys.argv[1])
height, width = int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(0)
image = np.repeat(np.repeat(rng.integers(0, 256, (height // 8, width // 8, 3),
                                         dtype=np.uint8), 8, 0), 8, 1)
data = saved.encode(image)
decoded = saved.decode(data)
assert decoded.shape == image.shape
print(""" + PEAK_RSS + """, len(data))
"""


@pytest.mark.slow
def test_24_megapixels_within_the_budget(tmp_path):
  """A 6000 × 4000 image round-trips through a tiny hyperprior exported with
  a 1.5 GB budget, in a process whose peak RSS stays under it (untiled, its
  synthesis alone would need about 4 GB by `tiling.bytes_per_position`)."""
  budget = 3 << 29
  model = train.build("hyperprior", TINY)
  path = export.export(model, str(tmp_path / "m"), memory_budget=budget)
  result = run(["-c", _PEAK, path, "4000", "6000"])
  assert result.returncode == 0, result.stderr
  peak = int(result.stdout.split()[0])
  print(f"24 MP encode + decode in one process: peak RSS {peak / 2**30:.2f} "
        f"GiB, budget {budget / 2**30:.2f} GiB")
  assert peak < budget, peak


@pytest.mark.slow
def test_forged_stream_at_the_maximum_size(tmp_path):
  """A valid container (the integrity key is public) claiming the largest
  image the format allows, with a few bytes of streams: refused by the
  latent check after a decode that stays within the budget."""
  budget = 3 << 29
  model = train.build("hyperprior", TINY)
  path = export.export(model, str(tmp_path / "m"), memory_budget=budget)
  side = 1 << 13  # 8192² = MAX_PIXELS
  model_id = bytes.fromhex(export.info(path)["model_id"])
  forged = bitstream.pack(model_id, side, side, [b"\x00" * 4, b"\x00" * 4],
                          tf.constant(0, tf.int64)).numpy()
  script = (
      "import sys\n"
      "from tflic import codec, bitstream\n"
      "saved = codec.SavedCodec(sys.argv[1])\n"
      "try:\n"
      "  saved.decode(open(sys.argv[2], 'rb').read())\n"
      "  print('decoded')\n"
      "except bitstream.BitstreamError as e:\n"
      "  print('refused:', e)\n"
      f"print({PEAK_RSS})\n")
  (tmp_path / "forged.tfl").write_bytes(forged)
  result = run(["-c", script, path, str(tmp_path / "forged.tfl")])
  assert result.returncode == 0, result.stderr
  lines = result.stdout.splitlines()
  assert lines[0].startswith("refused:"), lines
  print(f"forged 8192² stream: peak RSS {int(lines[-1]) / 2**30:.2f} GiB, "
        f"budget {budget / 2**30:.2f} GiB")
  assert int(lines[-1]) < budget, lines
