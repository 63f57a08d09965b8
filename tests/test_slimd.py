"""SLIMD (Minnen et al. 2018, ICIP): exact coding of the factorized model's
code tensor (and, beyond the paper, of the hyper-latent ẑ) with local
entropy models from a learned dictionary, the encoder's choice (eq. 1,
§2.3), the fitting binary and the export."""

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_compression as tfc

from tests.conftest import random_image, run, shared, tool
from tflic import bitstream
from tflic import codec as codec_lib
from tflic import export
from tflic import images
from tflic import slimd_fit
from tflic import train
from tflic.entropy import slimd

@pytest.fixture(scope="session")
def slimd_model(codecs):
  """The golden SLIMD model (16 entries, 2 × 2 tiles), frozen."""
  return codecs("slimd").model


@pytest.fixture(scope="session")
def slimd_dir(run_dirs):
  return run_dirs("slimd")


def solid(height, width, colour=(200, 120, 40)):
  return np.broadcast_to(np.array(colour, np.uint8), (height, width, 3)).copy()


def noise(height, width, seed=0):
  return np.random.default_rng(seed).integers(0, 256, (height, width, 3),
                                              dtype=np.uint8)


def _coder(entries=6, channels=3, radius=3, seed=0, index_counts=None):
  rng = np.random.default_rng(seed)
  dictionary = rng.dirichlet(np.ones(2 * radius + 2), size=entries)
  counts = (np.zeros([channels, 256]) if index_counts is None
            else index_counts)
  return slimd.Slimd(dictionary, counts, tile=2, radius=radius)


@pytest.mark.parametrize("name", ["solid", "noise"])
@pytest.mark.xdist_group("slimd")  # (on the worker that has its codec)
def test_round_trip_is_exact(slimd_model, name):
  """(A photo and odd sizes: tests/test_contract.py.)"""
  image = dict(solid=solid(64, 96), noise=noise(48, 80))[name]
  x = images.pad_to_multiple(tf.constant(image), 16)[None]
  codec = slimd_model.latent_codec

  @tf.function(autograph=False)
  def encode(x):
    y = slimd_model.analyze(x)
    streams, latents = codec.encode(y)
    # SLIMD changes the entropy model only: ŷ is the factorized model's.
    return streams, latents["y_hat"], codec.prior_codec.quantize(y)
  streams, encoded, plain = encode(x)
  assert len(streams) == 2
  np.testing.assert_array_equal(encoded.numpy(), plain.numpy())
  decoded = tf.function(slimd_model.decode_latents, autograph=False)(
      streams, *x.shape[1:3])
  np.testing.assert_array_equal(encoded.numpy(), decoded["y_hat"].numpy())


@pytest.mark.xdist_group("slimd")  # (on the worker that has its codec)
def test_solid_colour_costs_less_than_the_factorized_prior(slimd_model):
  """A flat image: every tile of a channel holds one value, which a peaked
  entry or the image's own distribution codes in a fraction of the
  factorized prior's bits."""
  x = tf.constant(solid(256, 256))[None]
  streams, _ = slimd_model.encode_latents(x)
  slimd_bytes = sum(len(s.numpy()) for s in streams)
  plain = slimd_model.latent_codec.prior_codec.encode(
      slimd_model.analyze(x))[0][0]
  assert slimd_bytes < 0.5 * len(plain.numpy()), (slimd_bytes,
                                                  len(plain.numpy()))


def test_choice_is_the_argmin_of_eq_1():
  coder = _coder(entries=7, channels=4)
  rng = np.random.default_rng(1)
  counts = rng.integers(0, 5, (9, 4, coder.num_bins)).astype(np.int32)
  counts[0, 0] = 0
  counts[0, 0, 2] = 4  # a tile of one value
  best, _ = coder.best_entries(tf.constant(counts))
  lengths = coder.dictionary_lengths.numpy()
  for t in range(9):
    for c in range(4):
      costs = [sum(int(counts[t, c, b]) * lengths[k, b]
                   for b in range(coder.num_bins)) for k in range(7)]
      assert best.numpy()[t, c] == int(np.argmin(costs)), (t, c, costs)


def test_ties_choose_the_lower_index():
  coder = slimd.Slimd(np.ones([3, 8]) / 8, np.zeros([1, 256]), 2, 3)
  best, _ = coder.best_entries(tf.ones([5, 1, 8], tf.int32))
  assert (best.numpy() == 0).all()


def test_image_dependent_distribution_rule():
  """§2.3 on a constructed case. Channel 0: every tile is uniform over the
  symbols 2 and 3, which no entry models well: the average of its poor
  tiles is sent and every tile uses index 255. Channel 1 matches an entry
  exactly: nothing is sent. Channel 2: a single poor tile of one position
  saves less than the distribution costs: not sent."""
  radius, num_bins = 3, 8
  dictionary = np.array([[1, 2, 4, 2, 1, 0, 0, 0],
                         [0, 0, 1, 8, 1, 0, 0, 0]], np.float64) + 1e-3
  coder = slimd.Slimd(dictionary, np.zeros([3, 256]), 2, radius)
  counts = np.zeros([40, 3, num_bins], np.int32)
  counts[:, 0, radius + 2] = 2
  counts[:, 0, radius + 3] = 2
  counts[:, 1] = [1, 2, 4, 2, 1, 0, 0, 0]
  counts[:, 2, radius] = 1
  counts[0, 2, radius] = 0
  counts[0, 2, radius + 3] = 1
  indices, sent, histograms = coder.choose(tf.constant(counts))
  assert sent.numpy().tolist() == [True, False, False]
  assert (indices.numpy()[:, 0] == slimd.CUSTOM).all()
  expected = np.zeros(num_bins, np.int32)
  expected[[radius + 2, radius + 3]] = 255
  np.testing.assert_array_equal(histograms.numpy()[0], expected)
  assert (histograms.numpy()[1:] == 0).all()
  assert (indices.numpy()[:, 1] == 0).all()
  assert slimd.CUSTOM not in indices.numpy()[:, 2]


def test_integer_cdf():
  cdf = slimd.integer_cdf(tf.constant([[0, 255, 255, 10]])).numpy()[0]
  counts = np.diff(cdf)
  assert cdf[0] == 0 and cdf[-1] == 1 << 16
  assert counts.min() >= 1
  # 1 + ⌊w (2^16 − 4) / 520⌋, the remainder to the first largest bin.
  base = 1 + np.array([0, 255, 255, 10]) * (65536 - 4) // 520
  base[1] += 65536 - base.sum()
  np.testing.assert_array_equal(counts, base)


def _side(flags, ends=(), values=(), indices=()):
  """A side stream in the layout of `Slimd.encode` for a one-tile image:
  channel flags, span ends, span values (as coded) and the first tile's
  indices."""
  coder = _coder(entries=6, channels=3)
  handle = tfc.create_range_encoder([], coder.side_table)
  for row, symbols in ((slimd._FLAG, flags), (slimd._END, ends)):  # pylint: disable=protected-access
    handle = tfc.entropy_encode_index(
        handle, tf.fill([len(symbols)], row), tf.constant(symbols, tf.int32))
  handle = tfc.entropy_encode_index(
      handle, tf.fill([len(values)], slimd._VALUE),  # pylint: disable=protected-access
      tf.constant(values, tf.int32))
  handle = tfc.entropy_encode_index(
      handle, slimd._PRIOR + tf.range(len(indices)),  # pylint: disable=protected-access
      tf.constant(indices, tf.int32))
  return coder, tfc.entropy_encode_finalize(handle)


@pytest.mark.parametrize("forge, message", [
    ("entry", "tile index"), ("unsent", "tile index"),
    ("span", "span ends before it starts")])
def test_forged_side_information_is_refused(forge, message):
  """A side stream naming entry K (beyond the dictionary), 255 in a channel
  without a sent distribution, or a span whose last bin precedes its first
  raises a bitstream error."""
  if forge == "span":
    coder, side = _side([1, 0, 0], [5, 2], [], [0, 0, 0])
  else:
    bad = 6 if forge == "entry" else slimd.CUSTOM
    coder, side = _side([0, 0, 0], indices=[0, bad, 0])
  _, code = coder.encode(tf.zeros([2, 2, 3], tf.int32))
  with pytest.raises(bitstream.BitstreamError, match=message):
    bitstream.raise_bitstream_errors(
        lambda: coder.decode(side, code, 2, 2).numpy())


def test_a_sent_distribution_costs_its_span():
  """§2.3 with the paper's cost: a one-hot image-dependent distribution
  costs a few bits (its two span ends and one value), not 8 bits per bin;
  a channel whose tiles are all one value sends one even when the entries
  fit it almost as well."""
  coder = _coder(entries=6, channels=3, radius=15)
  symbols = np.zeros([32, 32, 3], np.int32)
  symbols[..., 1] = 4
  indices, sent, histograms = coder.choose(
      slimd.tile_histograms(tf.constant(symbols), 2, 15))
  assert sent.numpy().all()
  assert ((histograms.numpy() > 0).sum(1) == 1).all()
  side, code = coder.encode(tf.constant(symbols))
  # Three spans of one bin (2·5 + 8 bits each), the flags and 768 tile
  # indices repeating; the 8-bit bins alone were 3 × 256 bits before.
  assert len(side.numpy()) * 8 < 200
  np.testing.assert_array_equal(coder.decode(side, code, 32, 32), symbols)


def test_repeated_indices_cost_little():
  """Spatial context: tile indices equal to their left (or upper) tile's
  cost a fraction of a bit after a few tiles; changes cost their index."""
  coder = _coder(entries=6, channels=3)
  code = lambda indices: len(tfc.entropy_encode_finalize(
      coder._encode_indices(  # pylint: disable=protected-access
          tfc.create_range_encoder([], coder.side_table),
          tf.constant(indices, tf.int32), 8)).numpy())
  rng = np.random.default_rng(3)
  constant = np.broadcast_to(rng.integers(0, 6, [1, 3]), [64, 3])
  varied = rng.integers(0, 6, [64, 3])
  assert code(constant) * 8 < 64
  assert code(varied) * 8 > 64 * 3 * 2


@pytest.mark.xdist_group("slimd")  # (on the worker that has its codec)
def test_truncated_side_information_is_refused(slimd_model, photo):
  """A container whose side information was cut (integrity check forged to
  match) decodes to other indices: the decoder reports it."""
  codec = codec_lib.Codec(slimd_model, memory_budget=None)
  data = codec.encode(tf.constant(photo[:64, :64]))["bitstream_bytes"]
  _, _, streams, check = bitstream.unpack(data, codec.model_id, 2)
  forged = bitstream.pack(codec.model_id, 64, 64,
                          [tf.strings.substr(streams[0], 0, 1), streams[1]],
                          check)
  with pytest.raises(bitstream.BitstreamError):
    bitstream.raise_bitstream_errors(
        lambda: codec.decode(forged)["image"].numpy())


def test_savedmodel_in_a_fresh_process(slimd_dir, tmp_path, photo):
  """bin/export codes with the run's dictionary (two streams); --noslimd
  exports the factorized prior. A fresh process decodes the library's bytes
  of each test image to the library's own decoding."""
  # (bin/export's one end-to-end run, then in this process)
  for flag, streams, runner in (("", 2, run), ("--noslimd", 1, tool)):
    path = str(tmp_path / f"export{flag}")
    result = runner(["bin/export", f"--model_dir={slimd_dir}",
                     f"--export_dir={path}", "--calibration_data=samples"]
                    + ([flag] if flag else []))
    assert result.returncode == 0, result.stderr
    assert export.info(path)["num_streams"] == streams
    assert (export.info(path)["slimd"] ==
            (dict(tile=2, radius=15, entries=16) if streams == 2 else None))
  images = dict(photo=photo[:96, :128], solid=solid(40, 24),
                noise=noise(33, 17), one=random_image(1, 1),
                odd=random_image(17, 33))
  for name, image in images.items():
    np.save(tmp_path / f"{name}.npy", image)
  code = f"""
import sys, numpy as np
from tflic import codec
c = codec.SavedCodec({str(tmp_path / 'export')!r})
for name in {list(images)!r}:
  image = np.load({str(tmp_path)!r} + f"/{{name}}.npy")
  data = c.encode(image)
  open({str(tmp_path)!r} + f"/{{name}}.bin", "wb").write(data)
  np.save({str(tmp_path)!r} + f"/{{name}}.out.npy", c.decode(data))
"""
  result = run(["-c", code])
  assert result.returncode == 0, result.stderr
  library = codec_lib.SavedCodec(str(tmp_path / "export"))
  for name, image in images.items():
    data = (tmp_path / f"{name}.bin").read_bytes()
    assert data == library.encode(image), name
    np.testing.assert_array_equal(np.load(tmp_path / f"{name}.out.npy"),
                                  library.decode(data))


def test_export_refuses_a_stale_or_missing_dictionary(slimd_dir, tmp_path):
  """A dictionary belongs to its checkpoint: after more training, export
  says to fit it again; --slimd on a run without one says to fit one."""
  run_dir = tmp_path / "run"
  shutil.copytree(slimd_dir, run_dir)
  old = os.path.basename(tf.train.latest_checkpoint(run_dir))
  new = old + "0"  # a later checkpoint (of the same weights)
  for name in os.listdir(run_dir):
    if name.startswith(old + "."):
      shutil.copy(run_dir / name, run_dir / name.replace(old, new))
  (run_dir / "checkpoint").write_text(
      (run_dir / "checkpoint").read_text().replace(old, new))
  with pytest.raises(ValueError, match="bin/slimd_fit again"):
    slimd_fit.load(str(run_dir))
  os.remove(run_dir / slimd_fit.FILE)
  result = tool(["bin/export", f"--model_dir={run_dir}", "--slimd",
                 f"--export_dir={tmp_path / 'e'}"])
  assert result.returncode == 1
  assert "run bin/slimd_fit first" in result.stderr
  assert len(result.stderr.strip().splitlines()) == 1


def _fit_copy(tmp_path_factory, name, run_dir):
  """A copy of a run with a ẑ dictionary fitted by bin/slimd_fit (once per
  session)."""
  def make(path):
    shutil.copytree(run_dir, path)
    result = run(["bin/slimd_fit", f"--model_dir={path}", "--train_data=samples",
                  "--slimd_entries=16", "--slimd_tile=2", "--iterations=3"])
    assert result.returncode == 0, result.stderr
  return shared(tmp_path_factory, f"run-{name}-slimd", make)


@pytest.mark.parametrize("variant", [
    "hyperprior", pytest.param("joint", marks=pytest.mark.slow)])
def test_hyper_latent_round_trip(run_dirs, variant, tmp_path_factory, photo):
  """Beyond the paper: ẑ of a hyperprior or context model coded with SLIMD
  (three streams: ẑ's side information and code, ŷ) decodes to the
  latents of the factorized prior, exactly."""
  run_dir = _fit_copy(tmp_path_factory, variant, run_dirs(variant))
  calibration = train.calibration_images(run_dir, "samples")
  model = train.load(run_dir)
  plain, expected = codec_lib.Codec(model, calibration).model.encode_latents(
      tf.constant(photo[:128, :192])[None])
  model.use_slimd(slimd_fit.load(run_dir))
  model = codec_lib.Codec(model, calibration).model
  assert model.latent_codec.num_streams == 3
  x = tf.constant(photo[:128, :192])[None]
  streams, encoded = tf.function(model.encode_latents, autograph=False)(x)
  decoded = tf.function(model.decode_latents, autograph=False)(streams,
                                                             128, 192)
  assert len(streams) == 3 and streams[-1].numpy() == plain[-1].numpy()
  for name in ("y_hat", "z_hat"):
    np.testing.assert_array_equal(encoded[name].numpy(), expected[name].numpy())
    np.testing.assert_array_equal(decoded[name].numpy(), expected[name].numpy())


@pytest.mark.slow
def test_hyper_latent_savedmodel_in_a_fresh_process(trained_dir, tmp_path,
                                                    tmp_path_factory, photo):
  """bin/export codes a hyperprior run's ẑ with its dictionary (--noslimd:
  the factorized prior); a fresh process decodes the SLIMD file to the
  image of the plain file."""
  run_dir = _fit_copy(tmp_path_factory, "hyperprior", trained_dir)
  paths = {}
  for flag in ("--slimd", "--noslimd"):
    paths[flag] = str(tmp_path / flag)
    result = run(["bin/export", f"--model_dir={run_dir}", flag,
                  f"--export_dir={paths[flag]}", "--calibration_data=samples"])
    assert result.returncode == 0, result.stderr
  assert export.info(paths["--slimd"])["num_streams"] == 3
  image = photo[:100, :150]
  plain = codec_lib.SavedCodec(paths["--noslimd"])
  data = codec_lib.SavedCodec(paths["--slimd"]).encode(image)
  (tmp_path / "z.bin").write_bytes(data)
  code = f"""
import numpy as np
from tflic import codec
c = codec.SavedCodec({paths["--slimd"]!r})
np.save({str(tmp_path / "out.npy")!r},
        c.decode(open({str(tmp_path / "z.bin")!r}, "rb").read()))
"""
  result = run(["-c", code])
  assert result.returncode == 0, result.stderr
  np.testing.assert_array_equal(np.load(tmp_path / "out.npy"),
                                plain.decode(plain.encode(image)))
