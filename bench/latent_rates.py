"""Where the bits go: y's and z's rates, on training crops and on whole
images, of the weights `compare_training.py --save_dir` keeps.

For each saved step, both libraries' hyperpriors estimate the bits of the
rounded latents (tflic: its latent codecs with `training=False`;
CompressAI: its entropy bottleneck's and Gaussian conditional's
likelihoods in eval mode) of the same crops
(--crops batches of the training data, seeded) and of --eval_images. A
model whose y costs more on whole images than on crops (per pixel) does not
carry what it learnt on crops over to larger latents (docs/training.md);
z's share shows how far the factorized prior has come.

Which part does not carry over: y's bits on the whole images (cut to
multiples of --patch_size) against (tiles) the same pixels cut into
--patch_size² tiles, each coded alone, and (tiled hyper) y of the whole
image with h_a and h_s run on each tile's latents alone, as in training.
whole / tiled hyper is h_a/h_s's share of the difference (the same y),
tiled hyper / tiles g_a's (the same hyper context size).

  python bench/latent_rates.py --save_dir=build/compare \\
      --train_data='photos/*.jpg' --eval_images='kodak/*.png'
"""

import glob
import math
import os
import re
import sys

from absl import app
from absl import flags
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# pylint: disable=g-import-not-at-top,wrong-import-position
import tensorflow as tf  # before app.run (tflic/__init__.py says why)
from tflic import data
from tflic import images as images_lib
from tflic import train

flags.DEFINE_string("save_dir", None, "compare_training.py's --save_dir.",
                    required=True)
flags.DEFINE_string("train_data", "samples", "Training images (crops of "
                    "them are measured).")
flags.DEFINE_string("eval_images", None, "Whole images (a glob).",
                    required=True)
flags.DEFINE_integer("crops", 4, "Batches of 8 crops of --patch_size.")
flags.DEFINE_integer("patch_size", 128, "Crop size.")
flags.DEFINE_integer("num_filters", 128, "N (as the bench's).")
flags.DEFINE_integer("latent_channels", 192, "M (as the bench's).")
flags.DEFINE_enum("scale", "sigma", ["log", "sigma"], "tflic's model, as "
                  "the bench's --scale.")
flags.DEFINE_integer("density_layers", 4, "tflic's model, as the bench's "
                     "--density_layers.")
flags.DEFINE_enum("hyper_padding", "pytorch", ["same", "pytorch"], "tflic's "
                  "model, as the bench's --hyper_padding.")
flags.DEFINE_enum("gdn", "original", ["simplified", "original"], "tflic's "
                  "model, as the bench's --gdn.")
flags.DEFINE_enum("hyper_activation", "leaky_relu", ["relu", "leaky_relu"],
                  "tflic's model, as the bench's --hyper_activation.")
flags.DEFINE_enum("transform_padding", "pytorch", ["same", "pytorch"],
                  "tflic's model, as the bench's --transform_padding.")
FLAGS = flags.FLAGS


def tflic_parts(path):
  """(g_a: x [B, H, W, 3] in [0, 1] → y [B, h, w, M]; bits: y → (y bits,
  z bits) given h_a/h_s of y) of tflic's saved model."""
  model = train.build("hyperprior", dict(
      num_filters=FLAGS.num_filters, latent_channels=FLAGS.latent_channels,
      hyper_channels=FLAGS.num_filters, scale=FLAGS.scale,
      density_layers=FLAGS.density_layers,
      hyper_padding=FLAGS.hyper_padding, gdn=FLAGS.gdn,
      hyper_activation=FLAGS.hyper_activation,
      transform_padding=FLAGS.transform_padding))
  tf.train.Checkpoint(model=model).read(path).expect_partial()
  codec = model.latent_codec

  def bits(y):
    y = tf.constant(y)
    z_latents, z_bits = codec.z_codec(codec.h_a(y), training=False)
    _, y_bits = codec.y_codec(y, training=False,
                              side=codec.h_s(z_latents["z_hat"]))
    return float(tf.reduce_sum(y_bits)), float(tf.reduce_sum(z_bits))
  return lambda x: model.analysis(tf.constant(x, tf.float32)).numpy(), bits


def compressai_parts(path):
  """As `tflic_parts`, of CompressAI's saved state dict."""
  import torch  # pylint: disable=import-outside-toplevel
  from compressai.models import MeanScaleHyperprior  # pylint: disable=import-outside-toplevel
  net = MeanScaleHyperprior(N=FLAGS.num_filters, M=FLAGS.latent_channels)
  net.load_state_dict(torch.load(path))
  net.eval()

  nchw = lambda a: torch.from_numpy(np.ascontiguousarray(
      np.asarray(a, np.float32).transpose(0, 3, 1, 2)))

  def analysis(x):
    with torch.no_grad():
      return net.g_a(nchw(x)).numpy().transpose(0, 2, 3, 1)

  def bits(y):
    with torch.no_grad():
      y = nchw(y)
      z_hat, z_likelihoods = net.entropy_bottleneck(net.h_a(y))
      scales, means = net.h_s(z_hat).chunk(2, 1)
      _, y_likelihoods = net.gaussian_conditional(y, scales, means=means)
    return tuple(float(torch.log(l).sum() / -math.log(2))
                 for l in (y_likelihoods, z_likelihoods))
  return analysis, bits


def tiles(a, side):
  """[1, H, W, C] → [n, side, side, C]: the side² tiles, row by row."""
  _, h, w, c = a.shape
  return a.reshape(h // side, side, w // side, side, c).transpose(
      0, 2, 1, 3, 4).reshape(-1, side, side, c)


def main(argv):
  del argv
  tf.keras.utils.set_random_seed(1)
  batches = iter(data.patches(FLAGS.train_data, FLAGS.patch_size, 8))
  crops = np.concatenate([next(batches).numpy() for _ in range(FLAGS.crops)])
  size = FLAGS.patch_size
  images = [images_lib.read_image(p)[0][None] / 255.
            for p in sorted(glob.glob(FLAGS.eval_images))]
  images = [x[:, :x.shape[1] // size * size, :x.shape[2] // size * size]
            for x in images]
  if not images:
    raise app.UsageError(f"no images match --eval_images={FLAGS.eval_images}")
  saved = []
  for path in glob.glob(os.path.join(FLAGS.save_dir, "*")):
    match = re.fullmatch(r"(tflic|compressai)-(\d+)(\.index|\.pt)",
                         os.path.basename(path))
    if match:
      saved.append((int(match[2]), match[1], path[:-len(".index")]
                    if match[3] == ".index" else path))
  if not saved:
    raise app.UsageError(f"no saved weights in {FLAGS.save_dir}")
  print("step library: bpp of y, z on crops | on whole images | y whole / "
        "crops | y of tiles alone | y whole, tiled hyper | whole / tiled "
        "hyper")
  pixels = sum(x.shape[1] * x.shape[2] for x in images)
  for step, library, path in sorted(saved):
    analysis, bits = (tflic_parts if library == "tflic" else
                      compressai_parts)(path)
    crop_y, crop_z = (b / crops.shape[0] / size ** 2
                      for b in bits(analysis(crops)))
    totals = np.zeros(4)  # y, z whole; y of the tiles; y with tiled hyper
    for x in images:
      y = analysis(x)
      totals += [*bits(y), bits(analysis(tiles(x, size)))[0],
                 bits(tiles(y, size // 16))[0]]
    whole_y, whole_z, tiled_y, tiled_hyper_y = totals / pixels
    print(f"{step} {library}: {crop_y:.4f}, {crop_z:.4f} | {whole_y:.4f}, "
          f"{whole_z:.4f} | {whole_y / crop_y:.2f} | {tiled_y:.4f} | "
          f"{tiled_hyper_y:.4f} | {whole_y / tiled_hyper_y:.2f}", flush=True)


if __name__ == "__main__":
  app.run(main)
