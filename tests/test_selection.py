"""Model selection for a target bit rate (Wen et al. 2019, §3): the stream
kept for one image, the allocation over a set, and the binaries that write
and read such streams."""

import itertools
import json

import numpy as np
from PIL import Image
import pytest

from tflic import bitstream
from tflic import codec
from tflic import export
from tflic import selection
from tflic import train
from tests.conftest import random_image, run, tool


def _candidate(model, bpp, quality, pixels=800):
  """A candidate of `bpp` (bytes rounded: pixels a multiple of 800 keeps
  two decimals of bpp exact)."""
  return selection.Candidate(model, b"x" * round(bpp * pixels / 8), pixels,
                             quality)


def test_best_fitting_keeps_the_best_stream_that_fits():
  candidates = [_candidate("a", .2, 30.), _candidate("b", .5, 33.),
                _candidate("c", .4, 34.), _candidate("d", .9, 36.)]
  assert selection.best_fitting(candidates, 50) == (candidates[2], True)
  assert selection.best_fitting(candidates, 40) == (candidates[2], True)
  assert selection.best_fitting(candidates, 39) == (candidates[0], True)
  assert selection.best_fitting(candidates, 19) == (candidates[0], False)


def _random_options(rng, images, models):
  """Per image, one candidate per model on a concave-ish RD curve with
  noise."""
  options = []
  for _ in range(images):
    scale = rng.uniform(.5, 2.)
    bpps = np.sort(rng.uniform(.05, 1.5, models)) * scale
    qualities = 25. + 5. * np.log2(bpps / .05) + rng.normal(0, .7, models)
    options.append([_candidate(f"m{k}", b, q)
                    for k, (b, q) in enumerate(zip(bpps, qualities))])
  return options


def test_allocation_meets_the_mean_and_is_optimal():
  rng = np.random.default_rng(0)
  for trial in range(30):
    options = _random_options(rng, 5, 4)
    smallest = np.mean([min(c.bpp for c in cs) for cs in options])
    largest = np.mean([max(c.bpp for c in cs) for cs in options])
    target = rng.uniform(smallest, largest)
    chosen, met = selection.allocate(options, target, budget="mean_bpp")
    assert met and len(chosen) == 5
    assert all(c in cs for c, cs in zip(chosen, options))
    assert np.mean([c.bpp for c in chosen]) <= target + 1e-12
    quality = np.mean([c.quality for c in chosen])
    # Brute force: the optimum, up to the grid (a hair under the target).
    best = [max(np.mean([c.quality for c in combo])
                for combo in itertools.product(*options)
                if np.mean([c.bpp for c in combo]) <= limit)
            for limit in (target, target * (1 - 1e-3))]
    assert best[1] - 1e-9 <= quality <= best[0] + 1e-9, trial
    for model, (bpp, single) in selection.single_models(
        options, budget="mean_bpp").items():
      if bpp <= target:  # never worse than a single model that fits
        assert quality >= single - 1e-9, model
  # Nothing fits: the smallest stream of each image, and the flag.
  options = _random_options(rng, 3, 3)
  chosen, met = selection.allocate(options, .01, budget="mean_bpp")
  assert not met
  assert [c.bpp for c in chosen] == [min(c.bpp for c in cs) for cs in options]


def _clic(model, pixels, bpp, mse):
  return selection.Candidate(model, b"x" * round(bpp * pixels / 8), pixels,
                             10 * np.log10(255 ** 2 / mse), mse * 3 * pixels)


def test_clic_rule_budgets_the_whole_set_by_pixels():
  """A 4 MP and a 0.25 MP image, each with a smaller and a larger stream.
  Within a mean of 0.15 bpp per image, the large image at 0.17 and the
  small one at 0.13 fit (mean 0.15) but the set's real rate is 0.168 bpp;
  CLIC's rule (the set's bytes over its pixels) refuses that and chooses
  the allocation of least total squared error that fits."""
  big, small = 1 << 22, 1 << 18
  options = [[_clic("a", big, .13, 40.), _clic("b", big, .17, 30.)],
             [_clic("a", small, .13, 50.), _clic("b", small, .19, 20.)]]
  mean, met = selection.allocate(options, .1501, budget="mean_bpp",
                                 metric="psnr")
  assert met and [c.model for c in mean] == ["b", "a"]
  assert selection.set_rate(mean, "mean_bpp") == pytest.approx(.15, abs=1e-5)
  assert selection.set_rate(mean) == pytest.approx(.1676, abs=1e-4)
  clic, met = selection.allocate(options, .1501)
  assert met and [c.model for c in clic] == ["a", "b"]
  assert selection.set_rate(clic) <= .15
  # PSNR of the set's total error: dominated by the large image.
  expected = 10 * np.log10(255 ** 2 / ((40 * big + 20 * small) / (big + small)))
  assert selection.set_score(clic) == pytest.approx(expected)
  # Every other allocation within the budget has more total error.
  for combo in itertools.product(*options):
    if selection.set_rate(combo) <= .15:
      assert selection.set_score(combo) <= selection.set_score(clic) + 1e-9


@pytest.fixture(scope="module")
def two_models(exported_dir, tmp_path_factory):
  """Two exported models of different rates: the trained hyperprior and an
  untrained tiny factorized model."""
  model = train.build("factorized", dict(num_filters=4), lmbda=0.02)
  path = str(tmp_path_factory.mktemp("selection") / "factorized" / "1")
  return [exported_dir, export.export(model, path, name="factorized")]


def test_compress_keeps_the_best_fitting_model_and_decompress_finds_it(
    two_models, tmp_path):
  image = random_image(64, 96, seed=5)
  source = tmp_path / "in.png"
  Image.fromarray(image).save(source)
  saved = [codec.SavedCodec(d) for d in two_models]
  streams = [s.encode(image) for s in saved]
  decoded = [s.decode(d) for s, d in zip(saved, streams)]
  psnr = [selection.METRICS["psnr"](image, d) for d in decoded]
  best = int(np.argmax(psnr))
  models = "--model=" + ",".join(two_models)

  # A target every stream meets: the higher PSNR; one only the smaller
  # meets: that one; none: the smallest, with a notice.
  sizes = [len(s) for s in streams]
  small = int(np.argmin(sizes))
  for target_bytes, expected, notice in (
      (max(sizes), best, False), (min(sizes), small, False),
      (min(sizes) - 1, small, True)):
    out = tmp_path / f"out{target_bytes}.tfl"
    target_bpp = (target_bytes + .5) * 8 / (64 * 96)
    result = tool(["bin/compress", models, f"--target_bpp={target_bpp}",
                   "-v", str(source), str(out)])
    assert result.returncode == 0, result.stderr[-2000:]
    assert out.read_bytes() == streams[expected]
    assert ("notice: no model fits" in result.stdout) == notice
    assert f"* {two_models[expected]}:" in result.stdout
    png = tmp_path / f"out{target_bytes}.png"
    result = tool(["bin/decompress", models, str(out), str(png)])
    assert result.returncode == 0, result.stderr[-2000:]
    np.testing.assert_array_equal(np.asarray(Image.open(png)), decoded[expected])

  # The stream names its model; other models are refused in one line.
  assert selection.model_for(streams[1], two_models) == two_models[1]
  with pytest.raises(bitstream.BitstreamError, match="made by none of the"):
    selection.model_for(streams[1], two_models[:1])
  with pytest.raises(bitstream.BitstreamError, match="not a tflic bitstream"):
    selection.model_for(b"PNG", two_models)
  result = tool(["bin/decompress", f"--model={two_models[0]},{two_models[0]}",
                 str(out), str(tmp_path / "x.png")])
  assert result.returncode == 1 and "made by none of the models" in result.stderr
  assert not (tmp_path / "x.png").exists()
  # Several models without a target: which stream to keep is not defined.
  result = tool(["bin/compress", models, str(source), str(tmp_path / "y.tfl")])
  assert result.returncode == 1
  assert result.stderr.strip().endswith("several --model need --target_bpp "
                                        "(it decides which stream is kept)")


def test_compress_set_meets_the_mean_rate(two_models, tmp_path):
  image_dir = tmp_path / "images"
  image_dir.mkdir()
  for seed in range(3):
    Image.fromarray(random_image(48 + 16 * seed, 64, seed)).save(
        image_dir / f"im{seed}.png")
  output = tmp_path / "out"
  args = ["bin/compress_set", "--model=" + ",".join(two_models),
          f"--images={image_dir}/*.png", f"--output_dir={output}"]
  # First with a generous target (to learn the two models' rates) ...
  result = run(args + ["--target_bpp=100"])
  assert result.returncode == 0, result.stderr[-2000:]
  report = json.loads((output / "selection.json").read_text())
  singles = sorted(m["bpp"] for m in report["single_models"].values())
  # ... then between them: only a mix can use the rate.
  target = (singles[0] + singles[1]) / 2
  result = tool(args + [f"--target_bpp={target}", "--overwrite"])
  assert result.returncode == 0, result.stderr[-2000:]
  report = json.loads((output / "selection.json").read_text())
  assert report["met"] and report["total_bpp"] <= target
  assert report["bpp"] == report["total_bpp"]
  assert f"total bpp of the set {report['total_bpp']:.4f}" in result.stdout
  assert "best single model within" in result.stdout
  assert "3/3 images" in result.stderr
  for entry in report["images"]:
    data = open(entry["stream"], "rb").read()
    assert 8 * len(data) / (entry["bpp"]) == pytest.approx(
        Image.open(entry["image"]).size[0] * Image.open(entry["image"]).size[1])
    assert selection.model_for(data, two_models) == entry["model"]
  # Existing streams are refused before any work.
  result = tool(args + [f"--target_bpp={target}"])
  assert result.returncode == 1 and "--overwrite" in result.stderr
