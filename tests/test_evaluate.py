"""Evaluation: classical codecs round-trip whole files, failures are reported
and never averaged, and bin/evaluate writes its JSON, CSV, plot and BD table."""

import csv
import io
import json
import os

import numpy as np
from PIL import Image
from PIL import JpegImagePlugin
import pytest

from tflic import classical
from tflic import evaluate
from tflic import export
from tflic import metrics
from tflic import references
from tflic import train
from tests.conftest import random_image, run

MID = dict(jpeg=50, webp=50, jpeg2000=2.0, avif=50, hevc=40, jxl=75)


@pytest.mark.parametrize("name", sorted(classical.CODECS))
def test_classical_codec_round_trip_counts_the_whole_file(name, tmp_path):
  codec = classical.get(name)
  image = random_image(45, 67, seed=3)  # odd sides
  setting = evaluate.codec_settings([name], {name: [MID[name]]})[0]
  row = evaluate.measure(setting, "random", image)
  assert row["error"] is None, row["error"]
  data = codec.encode(image, MID[name])
  assert row["bytes"] == len(data)  # deterministic, and every byte counted
  assert row["bpp"] == pytest.approx(8. * len(data) / (45 * 67))
  # The bytes are a complete file that Pillow opens on its own.
  path = tmp_path / f"coded.{name}"
  path.write_bytes(data)
  with Image.open(path) as opened:
    assert opened.format == codec.format
    decoded = np.asarray(opened.convert("RGB"))
  np.testing.assert_array_equal(decoded, codec.decode(data))
  assert decoded.shape == image.shape and decoded.dtype == np.uint8
  assert row["psnr"] == pytest.approx(metrics.psnr(image, decoded))
  assert row["psnr"] > 25.
  assert row["ms_ssim_db"] == pytest.approx(metrics.ms_ssim_db(row["ms_ssim"]))


def test_jpeg_is_444_and_sweeps_are_valid():
  data = classical.get("jpeg").encode(random_image(32, 32), 50)
  with Image.open(io.BytesIO(data)) as image:
    assert JpegImagePlugin.get_sampling(image) == 0  # 4:4:4
  for codec in classical.CODECS.values():
    for quality in codec.qualities:
      codec.options(quality, (512, 768, 3))
  with pytest.raises(ValueError, match="quality"):
    evaluate.codec_settings(["jpeg"], {"jpeg": [101]})
  with pytest.raises(ValueError, match="unknown codec"):
    evaluate.codec_settings(["jpeg3000"])
  with pytest.raises(ValueError, match="webp, which is not among"):
    evaluate.codec_settings(["jpeg"], {"webp": [50]})
  repeated = evaluate.codec_settings(["jpeg", "jpeg"], {"jpeg": [50, 50, 60]})
  assert [s.label for s in repeated] == ["jpeg quality=50", "jpeg quality=60"]


def test_hevc_is_444_heif_and_jxl_is_jpeg_xl():
  image = random_image(45, 67, seed=3)
  with Image.open(io.BytesIO(classical.get("hevc").encode(image, 40))) as heif:
    assert heif.format == "HEIF" and heif.info["chroma"] == 444
  data = classical.get("jxl").encode(image, 75)
  assert data[:2] == b"\xff\x0a"  # a bare JPEG XL codestream
  # The sweeps reach the papers' low rates: ~0.05 bpp for HEVC on a photo.
  sizes = [len(classical.get("hevc").encode(image, q)) for q in (0, 50)]
  assert sizes[0] < sizes[1]


def test_a_missing_plugin_is_one_line_naming_the_extra(tmp_path):
  for name in ("pillow_heif", "pillow_jxl"):  # plugins that fail to import
    (tmp_path / name).mkdir()
    (tmp_path / name / "__init__.py").write_text(
        "raise ImportError('no such plugin here')\n")
  env = dict(PYTHONPATH=f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
  for codec, package in (("hevc", "pillow-heif"), ("jxl", "pillow-jxl-plugin")):
    result = run(["bin/evaluate", "--images=x/*.png", f"--codecs=jpeg,{codec}",
                  f"--output_dir={tmp_path / codec}"], env=env)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"evaluate: error: codec {codec} needs the Pillow plugin {package}: "
        "pip install 'tflic[codecs]'")
    assert not os.path.exists(tmp_path / codec)


@pytest.mark.parametrize("name", references.names())
def test_reference_curves_load_with_their_source(name):
  curve, source, points = references.load(name)
  assert curve and source.startswith("https://github.com/")
  assert len(points) >= 6
  bpp = [p["bpp"] for p in points]
  assert bpp == sorted(bpp) and 0.02 < bpp[0] < 0.2
  for point in points:
    assert 20. < point["psnr"] < 55.
    assert point["ms_ssim"] is None or 0.8 < point["ms_ssim"] < 1.


def test_reference_curves_enter_the_bd_table_and_the_plot(tmp_path):
  published = evaluate.reference_curves(["bpg444", "minnen2018"])
  assert set(published) == {"BPG 4:4:4 (x265)", "Minnen 2018 joint (paper)"}
  # A measured curve with BPG's qualities at 90 % of its rates: BD-rate −10 %.
  bpg = published["BPG 4:4:4 (x265)"][1]
  rows = [dict(curve="ours", setting=f"ours {i}", image="kodim01", error=None,
               bpp=.9 * p["bpp"], psnr=p["psnr"], ms_ssim=p["ms_ssim"],
               ms_ssim_db=p["ms_ssim_db"], encode_seconds=1., decode_seconds=2.)
          for i, p in enumerate(bpg)]
  settings = [evaluate.Setting("ours", r["setting"], i, None, None, "/models/ours")
              for i, r in enumerate(rows)]
  anchor = evaluate.check_anchor(settings, "BPG 4:4:4 (x265)", published)
  report = evaluate.report(settings, rows, "kodak", anchor, published)
  bd = {row["curve"]: row for row in report["bd"]}
  assert bd["ours"]["bd_rate_psnr"] == pytest.approx(-10., abs=1e-6)
  assert bd["ours"]["bd_rate_ms_ssim_db"] == pytest.approx(-10., abs=1e-6)
  minnen = bd["Minnen 2018 joint (paper)"]
  assert minnen["bd_rate_psnr"] < 0  # the joint model beats BPG 4:4:4 in PSNR
  assert minnen["bd_rate_ms_ssim_db"] is None
  assert "no ms_ssim_db points published for Minnen" in minnen["notes"][0]
  assert "Minnen 2018 joint" in evaluate.bd_text(report["bd"], anchor)
  assert report["references"][0]["source"].endswith("bpg_444_x265_ycbcr.json")
  # Written: the plot, and each measured curve in CompressAI's format.
  paths = evaluate.write_outputs(str(tmp_path), report, compressai=True)
  with Image.open(tmp_path / "rd.png") as plot:
    assert plot.size[0] > plot.size[1] > 300
  assert str(tmp_path / "compressai" / "ours.json") in paths
  ours = json.loads((tmp_path / "compressai" / "ours.json").read_text())
  assert ours["name"] == "ours"
  assert ours["results"]["bpp"] == pytest.approx([.9 * p["bpp"] for p in bpg])
  assert ours["results"]["psnr-rgb"] == [p["psnr"] for p in bpg]
  assert ours["results"]["ms-ssim-rgb"] == [p["ms_ssim"] for p in bpg]
  assert ours["results"]["decoding_time"] == [2.] * len(bpg)
  # A CompressAI results file is itself a reference curve.
  curve, _, points = references.load(str(tmp_path / "compressai" / "ours.json"))
  assert curve == "ours" and points[0]["bpp"] == pytest.approx(.9 * bpg[0]["bpp"])
  with pytest.raises(ValueError, match="unknown reference curve 'bpg'.*bpg444"):
    evaluate.reference_curves(["bpg"])
  # Earlier CompressAI files are refused before any work, unless --overwrite.
  (tmp_path / "next" / "compressai").mkdir(parents=True)
  (tmp_path / "next" / "compressai" / "old.json").write_text("{}")
  evaluate.check_outputs(str(tmp_path / "next"))
  evaluate.check_outputs(str(tmp_path / "next"), True, compressai=True)
  with pytest.raises(ValueError, match="compressai exists and is not empty"):
    evaluate.check_outputs(str(tmp_path / "next"), compressai=True)


def test_failed_round_trips_are_reported_not_averaged():
  image = random_image(16, 24)

  def crop(data):
    return classical.decode(data)[:8]

  def fail(data):
    raise ValueError("damaged")

  jpeg = evaluate.codec_settings(["jpeg"], {"jpeg": [50]})[0]
  settings = [jpeg,
              evaluate.Setting("broken", "broken crop", 1., jpeg.encode, crop, ""),
              evaluate.Setting("broken", "broken raise", 2., jpeg.encode, fail, "")]
  images = [("a", image), ("b", random_image(16, 24, seed=1))]
  rows = evaluate.evaluate(settings, iter(images), 2, progress=False)
  assert len(rows) == 6
  errors = [r for r in rows if r["error"]]
  assert len(errors) == 4
  assert all(r["bpp"] is None and r["psnr"] is None for r in errors)
  assert "round trip failed" in errors[0]["error"]
  assert "ValueError: damaged" in errors[1]["error"]
  means = evaluate.summarize(settings, rows)
  assert means[0]["images"] == 2 and means[0]["errors"] == 0
  assert means[0]["psnr"] == pytest.approx(np.mean([r["psnr"] for r in rows[::3]]))
  assert means[1]["images"] == 0 and means[1]["errors"] == 2
  assert means[1]["psnr"] is None
  # A curve without points gets "n/a" BD values, not a crash.
  table = evaluate.bd_table(means, "jpeg")
  assert table[0]["curve"] == "broken" and table[0]["bd_rate_psnr"] is None
  assert table[0]["overlap_bpp"] is None
  assert "n/a" in evaluate.bd_text(table, "jpeg")


def test_tfds_images_are_read_in_order():
  tfds = pytest.importorskip("tensorflow_datasets")
  with tfds.testing.mock_data(num_examples=3):
    _, first = evaluate.image_set("tfds:clic", limit=2)
    first = list(first)
    _, second = evaluate.image_set("tfds:clic:test", limit=5)
    second = list(second)
  assert [name for name, _ in first] == ["clic/test/0", "clic/test/1"]
  assert len(second) == 3
  for (_, a), (_, b) in zip(first, second):
    np.testing.assert_array_equal(a, b)
    assert a.dtype == np.uint8 and a.ndim == 3 and a.shape[-1] == 3


@pytest.fixture(scope="module")
def factorized_dir(tmp_path_factory):
  """An untrained tiny factorized model (enough to code files)."""
  model = train.build("factorized", dict(num_filters=4), lmbda=0.02)
  path = str(tmp_path_factory.mktemp("export") / "factorized" / "1")
  return export.export(model, path, name="factorized")


def test_bin_evaluate_writes_json_csv_png(exported_dir, factorized_dir, tmp_path):
  image_dir = tmp_path / "images"
  image_dir.mkdir()
  for seed in range(2):
    Image.fromarray(random_image(48, 64, seed)).save(image_dir / f"im{seed}.png")
  output_dir = tmp_path / "out"
  args = ["bin/evaluate", f"--models={exported_dir},{factorized_dir}",
          f"--images={image_dir}/*.png", "--codecs=jpeg,webp",
          "--qualities_jpeg=20,50,80", "--qualities_webp=70,90,95", "--anchor=jpeg",
          "--reference=minnen2018", "--compressai_json", f"--output_dir={output_dir}"]
  result = run(args)
  assert result.returncode == 0, result.stderr[-3000:]
  assert "16/16" in result.stderr  # the progress bar
  for name in evaluate.OUTPUTS:
    assert (output_dir / name).stat().st_size > 0

  report = json.loads((output_dir / "results.json").read_text())
  assert report["num_images"] == 2 and report["anchor"] == "jpeg"
  assert len(report["rows"]) == 2 * 8 and not report["errors"]
  means = {m["setting"]: m for m in report["means"]}
  assert set(means) == {"hyperprior λ=0.01", "factorized λ=0.02",
                        "jpeg quality=20", "jpeg quality=50", "jpeg quality=80",
                        "webp quality=70", "webp quality=90", "webp quality=95"}
  for row in report["rows"]:
    assert row["bpp"] == pytest.approx(8. * row["bytes"] / (48 * 64))
  hyperprior = [r for r in report["rows"] if r["curve"] == "hyperprior"]
  assert means["hyperprior λ=0.01"]["psnr"] == pytest.approx(
      np.mean([r["psnr"] for r in hyperprior]))
  bd = {row["curve"]: row for row in report["bd"]}
  assert set(bd) == {"hyperprior", "factorized", "webp",
                     "Minnen 2018 joint (paper)"}
  assert report["references"][0]["curve"] == "Minnen 2018 joint (paper)"
  compressai = json.loads((output_dir / "compressai" / "jpeg.json").read_text())
  assert compressai["results"]["bpp"] == sorted(
      means[f"jpeg quality={q}"]["bpp"] for q in (20, 50, 80))
  assert bd["webp"]["bd_psnr"] is not None
  low, high = bd["webp"]["overlap_bpp"]
  assert means["webp quality=70"]["bpp"] <= low < high <= means["jpeg quality=80"]["bpp"]
  assert bd["hyperprior"]["bd_rate_psnr"] is None  # one point: n/a, no crash
  assert "1 point" in bd["hyperprior"]["notes"][0]

  with open(output_dir / "results.csv", newline="") as f:
    rows = list(csv.DictReader(f))
  assert len(rows) == 16 and rows[0]["curve"] == "hyperprior"
  assert float(rows[0]["bpp"]) == pytest.approx(report["rows"][0]["bpp"])
  assert (output_dir / "rd.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
  with Image.open(output_dir / "rd.png") as plot:
    assert plot.size[0] > plot.size[1] > 300
  assert "webp" in (output_dir / "bd.txt").read_text()
  assert "jpeg quality=50" in result.stdout and "BD-rate" in result.stdout

  # Existing outputs are refused before any work; a bad anchor is one line.
  result = run(args)
  assert result.returncode == 1 and "--overwrite" in result.stderr
  result = run(args[:-2] + ["--anchor=x265", f"--output_dir={tmp_path / 'o2'}"])
  assert result.returncode == 1
  assert result.stderr.strip().endswith(
      "(curves: hyperprior, factorized, jpeg, webp, Minnen 2018 joint (paper))")
  assert not os.path.exists(tmp_path / "o2")
