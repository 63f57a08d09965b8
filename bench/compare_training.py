"""Same model, same data, same steps: tflic against CompressAI.

Trains tflic's `hyperprior` (the mean-scale hyperprior, N, M, hyper
channels N) and CompressAI's `mbt2018-mean` (`MeanScaleHyperprior(N, M)`,
Minnen et al. 2018 without the context model: the same transforms) on the
very same batches.
tflic's model is trained in CompressAI's form by default (--scale=sigma:
h_s gives σ; --quantization=noise: y + u into g_s, z + u into h_s;
--initializer=pytorch; --density_layers=4; --hyper_padding=pytorch;
--likelihood_bound=1e-9; --gdn=original: x / √(β + Σγx²);
--hyper_activation=leaky_relu; --transform_padding=pytorch;
--adam=pytorch: then the same function as CompressAI's with the same
weights, bench/compressai_weights.py); give --scale=log
--quantization=round --initializer=glorot --density_layers=2
--hyper_padding=same --likelihood_bound=0 --gdn=simplified
--hyper_activation=relu --transform_padding=same --adam=keras for tflic's
default form. Batches:
each step draws one batch of random crops (`crops`: a seeded NumPy
generator, so that a run of one library, `--libraries=tflic`, gets the
same batches as a run of the other, and both can run at once, one per core)
and gives it to each library, one step each, alternately, so that the
steps/s ratio is measured under the same load. Both minimise R + λ·255²·MSE with Adam at
the same learning rate, gradients clipped to a global norm of 1 (CompressAI's
examples/train.py: its factorized prior's quantiles by a second Adam at
1e-3, its auxiliary loss). At each --eval_at step both code the
--eval_images as real files (tflic: `Codec`, its container included,
calibrated on the training data as bin/train's --eval_images;
CompressAI: `compress`/`decompress`, the strings' bytes only) and the mean
bpp and PSNR (and the files' R + λ·MSE) are printed and written to
--output (CSV), with the mean training loss since the previous evaluation
(the same batches for both).

Optional dependencies (not needed by tflic or its tests; PyPI's torch for
Linux brings CUDA's libraries, several GB: for CPU only, first
`pip install torch --index-url https://download.pytorch.org/whl/cpu`):

  pip install -e '.[compare]'
  python bench/compare_training.py --train_data='photos/*.jpg' \\
      --eval_images='kodak/*.png' --steps=2000 --eval_at=1000,2000
"""

import csv
import math
import os
import sys
import time

from absl import app
from absl import flags
from absl import logging
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# pylint: disable=g-import-not-at-top,wrong-import-position
import tensorflow as tf  # before app.run (tflic/__init__.py says why)
import compressai_weights
from tflic import calibration
from tflic import codec as codec_lib
from tflic import data
from tflic import images as images_lib
from tflic import initializers
from tflic import metrics
from tflic import train

flags.DEFINE_string("train_data", "samples", "Training images (a "
                    "bin/train --train_data spec).")
flags.DEFINE_string("eval_images", None, "Images coded as files at each "
                    "--eval_at step (a glob).", required=True)
flags.DEFINE_integer("steps", 2000, "Steps of each library.")
flags.DEFINE_list("eval_at", ["2000"], "Steps after which both code "
                  "--eval_images.")
flags.DEFINE_integer("num_filters", 128, "N.")
flags.DEFINE_integer("latent_channels", 192, "M.")
flags.DEFINE_integer("patch_size", 128, "Crop size.")
flags.DEFINE_integer("batch_size", 8, "Crops per batch.")
flags.DEFINE_float("lmbda", 0.0067, "λ of R + λ·255²·MSE.")
flags.DEFINE_float("learning_rate", 1e-4, "Adam's learning rate (both).")
flags.DEFINE_enum("scale", "sigma", ["log", "sigma"], "tflic's hyperprior: "
                  "h_s gives σ itself (CompressAI's) or log σ (tflic's "
                  "default).")
flags.DEFINE_enum("quantization", "noise", ["round", "noise"], "tflic's "
                  "hyperprior: the transforms get the latents + noise in "
                  "training (CompressAI's) or rounded (tflic's default).")
flags.DEFINE_integer("density_layers", 4, "tflic's hyperprior: hidden "
                     "layers of ẑ's densities (CompressAI's 4; tflic's "
                     "default 2).")
flags.DEFINE_enum("hyper_padding", "pytorch", ["same", "pytorch"], "tflic's "
                  "hyperprior: padding of h_a's and h_s's strided layers "
                  "(CompressAI's; tflic's default 'same').")
flags.DEFINE_float("likelihood_bound", 1e-9, "tflic's hyperprior: each "
                   "likelihood bounded below in training (CompressAI's "
                   "1e-9; tflic's default 0, not bounded).")
flags.DEFINE_enum("gdn", "original", ["simplified", "original"], "tflic's "
                  "hyperprior: GDN's form (CompressAI's 'original', α = 2, "
                  "ε = ½; tflic's default 'simplified', α = ε = 1).")
flags.DEFINE_enum("hyper_activation", "leaky_relu", ["relu", "leaky_relu"],
                  "tflic's hyperprior: activation in h_a and h_s "
                  "(CompressAI's leaky ReLU of slope 0.01; tflic's default "
                  "ReLU).")
flags.DEFINE_enum("transform_padding", "pytorch", ["same", "pytorch"],
                  "tflic's hyperprior: padding of g_a's and g_s's strided "
                  "layers (CompressAI's; tflic's default 'same').")
flags.DEFINE_enum("initializer", "pytorch", ["glorot", "pytorch"], "tflic's "
                  "initial convolution weights: PyTorch's (CompressAI's) or "
                  "Keras's (tflic's default).")
flags.DEFINE_enum("adam", "pytorch", ["keras", "pytorch"], "tflic's Adam: "
                  "PyTorch's form (CompressAI's; ε on the bias-corrected "
                  "√v̂) or Keras's (tflic's default; `tflic/adam.py`).")
flags.DEFINE_bool("tflic_from_compressai", False, "tflic's model starts "
                  "from CompressAI's very initial weights (of --seed; "
                  "bench/compressai_weights.py), not from its own draw.")
flags.DEFINE_bool("no_noise", False, "Both train on the latents without "
                  "the uniform noise (u = 0), so that from the same weights "
                  "(--tflic_from_compressai) their steps compare one by "
                  "one: a check that both compute the same training step.")
flags.DEFINE_string("state_dict", None, "CompressAI's model starts from "
                    "these weights (a state dict, as --save_dir writes), "
                    "and tflic's from a copy of them. With --steps=0 "
                    "--eval_at=0 both only code --eval_images: tflic's "
                    "coding of CompressAI's model against CompressAI's.")
flags.DEFINE_integer("seed", 1, "Seed of the crops and of both models.")
flags.DEFINE_integer("threads", 0, "Intra-op threads of each library "
                     "(0: their defaults).")
flags.DEFINE_multi_enum("libraries", ["tflic", "compressai"],
                        ["tflic", "compressai"], "Which to train.")
flags.DEFINE_integer("log_every", 100, "Print the mean loss, bpp, MSE and "
                     "steps/s of both every this many steps.")
flags.DEFINE_string("save_dir", None, "If set, each library's weights are "
                    "saved here at each --eval_at step (tflic-STEP: a "
                    "checkpoint of the model; compressai-STEP.pt: the "
                    "state dict), for later analysis.")
flags.DEFINE_string("output", "build/compare_training.csv", "CSV of the "
                    "evaluations and timings.")
FLAGS = flags.FLAGS


class Tflic:
  """tflic's hyperprior trained as bin/train trains it."""

  name = "tflic hyperprior"

  def __init__(self):
    tf.keras.utils.set_random_seed(FLAGS.seed)
    self.model = train.build("hyperprior", dict(
        num_filters=FLAGS.num_filters, latent_channels=FLAGS.latent_channels,
        hyper_channels=FLAGS.num_filters, scale=FLAGS.scale,
        quantization=FLAGS.quantization,
        density_layers=FLAGS.density_layers,
        hyper_padding=FLAGS.hyper_padding,
        likelihood_bound=FLAGS.likelihood_bound, gdn=FLAGS.gdn,
        hyper_activation=FLAGS.hyper_activation,
        transform_padding=FLAGS.transform_padding),
        lmbda=FLAGS.lmbda)
    initializers.initialize(self.model, FLAGS.initializer)
    if FLAGS.tflic_from_compressai or FLAGS.state_dict:
      compressai_weights.copy(CompressAI.network(), self.model)
    train.compile_adam(self.model, FLAGS.learning_rate, form=FLAGS.adam)
    self._step = tf.function(self.model.train_step)
    self.calibration = None

  def step(self, batch):
    self.model.reset_metrics()  # the step's values, not running means
    logs = self._step(tf.constant(batch))
    return float(logs["loss"]), float(logs["bpp"]), float(logs["mse"])

  def save(self, path):
    tf.train.Checkpoint(model=self.model).write(path)

  def evaluate(self, images):
    # Calibrated on the training data, as bin/train's --eval_images and
    # bin/export do (the default, made images, is for untrained models).
    if self.calibration is None:
      self.calibration = calibration.from_data(
          FLAGS.train_data, self.model.multiple, self.model.pad_mode)
    codec = codec_lib.Codec(self.model, self.calibration)
    figures = []
    for image in images:
      data = codec.encode(image)["bitstream_bytes"].numpy()
      decoded = codec.decode(data)["image"].numpy()
      figures.append((len(data), decoded))
    return figures


class CompressAI:
  """CompressAI's mbt2018-mean trained as its examples/train.py trains it."""

  name = "CompressAI mbt2018-mean"

  def __init__(self):
    import torch  # pylint: disable=import-outside-toplevel
    self.torch = torch
    if FLAGS.threads:
      torch.set_num_threads(FLAGS.threads)
    self.net = self.network()
    named = dict(self.net.named_parameters())
    main = [p for n, p in named.items() if not n.endswith(".quantiles")]
    aux = [p for n, p in named.items() if n.endswith(".quantiles")]
    self.optimizer = torch.optim.Adam(main, lr=FLAGS.learning_rate)
    self.aux_optimizer = torch.optim.Adam(aux, lr=1e-3)

  @staticmethod
  def network():
    """mbt2018-mean, N and M, as --seed draws its initial weights (or
    with those of --state_dict)."""
    import torch  # pylint: disable=import-outside-toplevel
    from compressai.models import MeanScaleHyperprior  # pylint: disable=import-outside-toplevel
    torch.manual_seed(FLAGS.seed)
    net = MeanScaleHyperprior(N=FLAGS.num_filters, M=FLAGS.latent_channels)
    if FLAGS.state_dict:
      net.load_state_dict(torch.load(FLAGS.state_dict))
    return net

  def step(self, batch):
    torch = self.torch
    self.net.train()
    x = torch.from_numpy(batch).permute(0, 3, 1, 2).contiguous()
    self.optimizer.zero_grad()
    self.aux_optimizer.zero_grad()
    out = self.net(x)
    n, _, h, w = x.shape
    bpp = sum(torch.log(l).sum() for l in out["likelihoods"].values()) / (
        -math.log(2) * n * h * w)
    mse = torch.nn.functional.mse_loss(out["x_hat"], x) * 255 ** 2
    loss = bpp + FLAGS.lmbda * mse
    loss.backward()
    torch.nn.utils.clip_grad_norm_(self.net.parameters(), 1.)
    self.optimizer.step()
    self.net.aux_loss().backward()
    self.aux_optimizer.step()
    return float(loss), float(bpp), float(mse)

  def save(self, path):
    self.torch.save(self.net.state_dict(), path + ".pt")

  def evaluate(self, images):
    torch = self.torch
    self.net.eval()
    self.net.update(force=True)
    figures = []
    with torch.no_grad():
      for image in images:
        h, w = image.shape[:2]
        x = torch.from_numpy(image).permute(2, 0, 1)[None].float() / 255.
        pad = (0, -w % 64, 0, -h % 64)
        x = torch.nn.functional.pad(x, pad, mode="constant", value=0)
        out = self.net.compress(x)
        size = sum(len(s) for strings in out["strings"] for s in strings)
        x_hat = self.net.decompress(out["strings"], out["shape"])["x_hat"]
        x_hat = x_hat[0, :, :h, :w].clamp(0, 1).permute(1, 2, 0).numpy()
        figures.append((size, np.round(x_hat * 255.).astype(np.uint8)))
    return figures


LIBRARIES = dict(tflic=Tflic, compressai=CompressAI)


def without_noise():
  """u = 0 in both libraries' training steps, from now on in this process:
  tflic draws its noise with `tf.random.uniform` (`entropy/noisy_rate.py`;
  initial weights are drawn already), CompressAI in its entropy models'
  `quantize(..., "noise")`."""
  tf.random.uniform = lambda shape, *_, dtype=tf.float32, **__: tf.zeros(
      shape, dtype)
  if "compressai" in FLAGS.libraries:
    from compressai.entropy_models import EntropyModel  # pylint: disable=import-outside-toplevel
    quantize = EntropyModel.quantize
    EntropyModel.quantize = lambda self, x, mode, means=None: (
        x if mode == "noise" else quantize(self, x, mode, means))


def crops(spec, patch_size, batch_size, seed):
  """Batches of random crops [B, P, P, 3] in [0, 1]: images and corners
  drawn by a NumPy generator of `seed`, the same in every process and for
  both libraries (tflic's input pipeline drew its crops in the order its
  threads asked for them before 6f2428d). The images are decoded once and
  kept in memory: a small training set."""
  images = [image.numpy() for image in data.images(spec, shuffle=False,
                                                   repeat=False)]
  small = sum(min(image.shape[:2]) < patch_size for image in images)
  if small:
    raise app.UsageError(f"{small} training images are smaller than "
                         f"--patch_size={patch_size}")
  rng = np.random.default_rng(seed)
  while True:
    batch = []
    for index in rng.integers(len(images), size=batch_size):
      image = images[index]
      top = rng.integers(image.shape[0] - patch_size + 1)
      left = rng.integers(image.shape[1] - patch_size + 1)
      batch.append(image[top:top + patch_size, left:left + patch_size])
    yield np.stack(batch).astype(np.float32) / 255.


def main(argv):
  del argv
  if FLAGS.threads:
    tf.config.threading.set_intra_op_parallelism_threads(FLAGS.threads)
  tf.keras.utils.set_random_seed(FLAGS.seed)
  batches = crops(FLAGS.train_data, FLAGS.patch_size, FLAGS.batch_size,
                  FLAGS.seed)
  eval_images = [images_lib.read_image(p)[0]
                 for p in sorted(tf.io.gfile.glob(FLAGS.eval_images))]
  if not eval_images:
    raise app.UsageError(f"no images match --eval_images={FLAGS.eval_images}")
  eval_at = sorted({int(s) for s in FLAGS.eval_at})
  runs = [LIBRARIES[name]() for name in FLAGS.libraries]
  if FLAGS.no_noise:
    without_noise()
  os.makedirs(os.path.dirname(FLAGS.output) or ".", exist_ok=True)
  if FLAGS.save_dir:
    os.makedirs(FLAGS.save_dir, exist_ok=True)
  rows = []
  seconds = [0.] * len(runs)  # after the first --log_every steps (tracing)
  counted = 0
  previous_eval = 0
  # Sums of (loss, bpp, mse) since the last log and since the last eval:
  # both libraries see the same batches, so their means compare closely.
  window = np.zeros((len(runs), 3))
  since_eval = np.zeros((len(runs), 3))

  def evaluate(step):
    """Each library codes --eval_images; a row of the CSV each."""
    nonlocal previous_eval
    for i, run in enumerate(runs):
      if FLAGS.save_dir:
        run.save(os.path.join(FLAGS.save_dir,
                              f"{FLAGS.libraries[i]}-{step}"))
      started = time.perf_counter()
      figures = run.evaluate(eval_images)
      bpp = np.mean([metrics.bpp(size, *image.shape[:2])
                     for (size, _), image in zip(figures, eval_images)])
      psnr = np.mean([float(metrics.psnr(image, decoded)) for
                      (_, decoded), image in zip(figures, eval_images)])
      # The objective both minimise, of the files: it compares models that
      # landed at other rates without assuming an RD slope.
      mse = np.mean([np.mean((image.astype(np.float64) - decoded) ** 2)
                     for (_, decoded), image in zip(figures, eval_images)])
      loss = bpp + FLAGS.lmbda * mse
      rows.append(dict(step=step, library=run.name, bpp=round(bpp, 5),
                       psnr=round(psnr, 3), files_loss=round(loss, 4),
                       train_loss=round(since_eval[i][0] / (
                           step - previous_eval), 4) if step else "",
                       steps_per_second=round(counted / seconds[i], 3)
                       if seconds[i] else "",
                       eval_seconds=round(time.perf_counter() - started, 1)))
      logging.info("step %d %s: %.4f bpp %.2f dB (R + λ·MSE %.4f) on %d "
                   "images", step, run.name, bpp, psnr, loss,
                   len(eval_images))
    since_eval[:] = 0.
    previous_eval = step
    with open(FLAGS.output, "w", newline="") as f:
      writer = csv.DictWriter(f, fieldnames=list(rows[0]))
      writer.writeheader()
      writer.writerows(rows)

  if 0 in eval_at:
    evaluate(0)
  for step in range(1, FLAGS.steps + 1):
    batch = next(batches)
    for i, run in enumerate(runs):
      started = time.perf_counter()
      logs = run.step(batch)
      if step > FLAGS.log_every:
        seconds[i] += time.perf_counter() - started
      window[i] += logs
      since_eval[i] += logs
    counted += step > FLAGS.log_every
    if step % FLAGS.log_every == 0:
      rates = [counted / s if s else 0. for s in seconds]
      window /= FLAGS.log_every
      logging.info("step %d, means of the last %d steps: %s", step,
                   FLAGS.log_every, "; ".join(
                       f"{r.name}: loss {l[0]:.3f} bpp {l[1]:.3f} "
                       f"mse {l[2]:.1f} {rate:.2f} steps/s"
                       for r, l, rate in zip(runs, window, rates)))
      window[:] = 0.
    if step in eval_at:
      evaluate(step)
  if counted and len(runs) == 2:
    logging.info("steps/s ratio %s / %s: %.2f (%d steps each)", runs[0].name,
                 runs[1].name, seconds[1] / seconds[0], counted)


if __name__ == "__main__":
  app.run(main)
