"""Where the bits go: y's and z's rates, on training crops and on whole
images, of the weights `compare_training.py --save_dir` keeps.

For each saved step, both libraries' hyperpriors estimate the bits of the
rounded latents (tflic: its latent codecs with `training=False`;
CompressAI: the likelihoods of `forward` in eval mode) of the same crops
(--crops batches of the training data, seeded) and of --eval_images. A
model whose y costs more on whole images than on crops (per pixel) does not
carry what it learnt on crops over to larger latents (docs/training.md);
z's share shows how far the factorized prior has come.

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
FLAGS = flags.FLAGS


def tflic_rates(path):
  """x [B, H, W, 3] in [0, 1] → (y bits, z bits) of tflic's saved model."""
  model = train.build("hyperprior", dict(
      num_filters=FLAGS.num_filters, latent_channels=FLAGS.latent_channels,
      hyper_channels=FLAGS.num_filters, scale=FLAGS.scale,
      density_layers=FLAGS.density_layers,
      hyper_padding=FLAGS.hyper_padding))
  tf.train.Checkpoint(model=model).read(path).expect_partial()
  codec = model.latent_codec

  def rates(x):
    y = model.analysis(tf.constant(x, tf.float32))
    z_latents, z_bits = codec.z_codec(codec.h_a(y), training=False)
    _, y_bits = codec.y_codec(y, training=False,
                              side=codec.h_s(z_latents["z_hat"]))
    return float(tf.reduce_sum(y_bits)), float(tf.reduce_sum(z_bits))
  return rates


def compressai_rates(path):
  """As `tflic_rates`, of CompressAI's saved state dict."""
  import torch  # pylint: disable=import-outside-toplevel
  from compressai.models import MeanScaleHyperprior  # pylint: disable=import-outside-toplevel
  net = MeanScaleHyperprior(N=FLAGS.num_filters, M=FLAGS.latent_channels)
  net.load_state_dict(torch.load(path))
  net.eval()

  def rates(x):
    with torch.no_grad():
      out = net(torch.from_numpy(np.asarray(x, np.float32)).permute(
          0, 3, 1, 2).contiguous())
    return tuple(float(torch.log(out["likelihoods"][k]).sum() / -math.log(2))
                 for k in ("y", "z"))
  return rates


def main(argv):
  del argv
  tf.keras.utils.set_random_seed(1)
  batches = iter(data.patches(FLAGS.train_data, FLAGS.patch_size, 8))
  crops = np.concatenate([next(batches).numpy() for _ in range(FLAGS.crops)])
  images = [images_lib.read_image(p)[0][None] / 255.
            for p in sorted(glob.glob(FLAGS.eval_images))]
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
        "crops")
  for step, library, path in sorted(saved):
    rates = (tflic_rates if library == "tflic" else compressai_rates)(path)
    crop_y, crop_z = (b / crops.shape[0] / FLAGS.patch_size ** 2
                      for b in rates(crops))
    totals = np.sum([rates(x) for x in images], axis=0)
    pixels = sum(x.shape[1] * x.shape[2] for x in images)
    whole_y, whole_z = totals / pixels
    print(f"{step} {library}: {crop_y:.4f}, {crop_z:.4f} | {whole_y:.4f}, "
          f"{whole_z:.4f} | {whole_y / crop_y:.2f}", flush=True)


if __name__ == "__main__":
  app.run(main)
