"""CompressAI's `mbt2018-mean` weights in tflic's hyperprior, and a check
that each part then computes the same function in both.

`copy(net, model)` gives tflic's `hyperprior` in CompressAI's form (the
bench's defaults: σ from h_s, PyTorch's padding, 4 density layers, GDN's
original form, leaky ReLU) the weights of a CompressAI
`MeanScaleHyperprior` of the same widths: kernels [O, I, h, w] (transposed:
[I, O, h, w]) as [h, w, I, O] ([h, w, O, I]), GDN's stored √(β + pedestal)
and √(γ + pedestal) (γ transposed: tensorflow-compression's is [in, out]),
the density's matrices, biases and factors (the same shapes), and h_s's
last layer with its outputs reordered (CompressAI's ψ is (σ, μ), tflic's
(μ, σ)). ẑ's quantization offsets are not copied: tflic finds its own.

Run as a script, it copies a CompressAI model (its initial weights by
--seed, or --state_dict) into tflic's and prints, for inputs drawn at
random, the largest difference of each part's outputs: g_a, g_s, h_a, h_s
and the likelihoods of z in ẑ's density:

  python bench/compressai_weights.py --state_dict=save/compressai-5000.pt
"""

import os
import sys

from absl import app
from absl import flags
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# pylint: disable=g-import-not-at-top,wrong-import-position
import tensorflow as tf  # before app.run (tflic/__init__.py says why)
from tflic import train

FLAGS = flags.FLAGS


def define_flags():
  """The script's flags (not defined on import: the bench has its own)."""
  flags.DEFINE_integer("num_filters", 128, "N.")
  flags.DEFINE_integer("latent_channels", 192, "M.")
  flags.DEFINE_integer("seed", 1, "Seed of CompressAI's initial weights and "
                       "of the inputs.")
  flags.DEFINE_string("state_dict", None, "A CompressAI state dict (.pt, "
                      "as bench/compare_training.py --save_dir writes) "
                      "instead.")


CONVOLUTIONS = tf.keras.layers.Conv2D  # transposed ones are subclasses


def _convolutions(sequential):
  return [layer for layer in sequential.layers
          if isinstance(layer, CONVOLUTIONS)]


def _modules(net, name, kind):
  import torch  # pylint: disable=import-outside-toplevel
  if kind == "gdn":
    return [module for module in getattr(net, name)
            if hasattr(module, "gamma_reparam")]
  return [module for module in getattr(net, name) if isinstance(
      module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]


def _numpy(tensor):
  return tensor.detach().cpu().numpy()


def pairs(net, model):
  """[(tflic convolution, CompressAI's)] of g_a, g_s, h_a and h_s."""
  codec = model.latent_codec
  found = []
  for part, sequential in (("g_a", model.analysis), ("g_s", model.synthesis),
                           ("h_a", codec.h_a), ("h_s", codec.h_s)):
    layers = _convolutions(sequential)
    modules = _modules(net, part, "conv")
    if len(layers) != len(modules):
      raise ValueError(f"{part}: {len(layers)} convolutions in tflic's, "
                       f"{len(modules)} in CompressAI's")
    found += list(zip(layers, modules))
  return found


def copy(net, model):
  """Sets `model`'s weights to `net`'s (module docstring)."""
  codec = model.latent_codec
  last = _convolutions(codec.h_s)[-1]
  for layer, module in pairs(net, model):
    kernel = _numpy(module.weight).transpose(2, 3, 1, 0)
    bias = _numpy(module.bias)
    if layer is last:  # (σ, μ) → (μ, σ)
      m = bias.shape[0] // 2
      order = np.r_[m:2 * m, 0:m]
      kernel, bias = kernel[..., order], bias[order]
    layer.kernel.assign(kernel)
    layer.bias.assign(bias)
  gdns = [layer.activation for sequential in (model.analysis, model.synthesis)
          for layer in sequential.layers if layer.activation is not None and
          hasattr(layer.activation, "gamma_parameter")]
  modules = _modules(net, "g_a", "gdn") + _modules(net, "g_s", "gdn")
  assert len(gdns) == len(modules), (len(gdns), len(modules))
  for gdn, module in zip(gdns, modules):
    gdn.beta_parameter.variable.assign(_numpy(module.beta))
    gdn.gamma_parameter.variable.assign(_numpy(module.gamma).T)
  density = codec.z_codec.prior.base
  bottleneck = net.entropy_bottleneck
  for mine, theirs in ((density._matrices, bottleneck.matrices),  # pylint: disable=protected-access
                       (density._biases, bottleneck.biases),  # pylint: disable=protected-access
                       (density._factors, bottleneck.factors)):  # pylint: disable=protected-access
    assert len(mine) == len(theirs)
    for variable, parameter in zip(mine, theirs):
      variable.assign(_numpy(parameter))


def build(net):
  """tflic's hyperprior in CompressAI's form with `net`'s widths."""
  return train.build("hyperprior", dict(
      num_filters=net.N, latent_channels=net.M, hyper_channels=net.N,
      scale="sigma", quantization="noise", density_layers=4,
      hyper_padding="pytorch", likelihood_bound=1e-9, gdn="original",
      hyper_activation="leaky_relu", transform_padding="pytorch"))


def differences(net, model, rng):
  """{part: (largest |tflic − CompressAI|, largest |CompressAI's|)} of g_a,
  g_s, h_a, h_s and the likelihoods of z, on random inputs."""
  import torch  # pylint: disable=import-outside-toplevel
  nchw = lambda x: torch.from_numpy(x).permute(0, 3, 1, 2)
  nhwc = lambda x: _numpy(x).transpose(0, 2, 3, 1)
  found = {}

  def note(name, mine, theirs):
    mine, theirs = np.asarray(mine), np.asarray(theirs)
    found[name] = (float(np.abs(mine - theirs).max()),
                   float(np.abs(theirs).max()))

  codec = model.latent_codec
  with torch.no_grad():
    x = rng.uniform(size=(1, 128, 192, 3)).astype(np.float32)
    note("g_a", model.analysis(x), nhwc(net.g_a(nchw(x))))
    y = rng.normal(size=(1, 8, 12, net.M)).astype(np.float32) * 4
    note("g_s", model.synthesis(y), nhwc(net.g_s(nchw(y))))
    y = rng.normal(size=(1, 32, 48, net.M)).astype(np.float32) * 4
    note("h_a", codec.h_a(y), nhwc(net.h_a(nchw(y))))
    z = rng.normal(size=(1, 8, 12, net.N)).astype(np.float32) * 3
    psi = codec.h_s(z).numpy()
    scales, means = net.h_s(nchw(z)).chunk(2, 1)
    note("h_s: μ", psi[..., :net.M], nhwc(means))
    note("h_s: σ (before its bound)", psi[..., net.M:], nhwc(scales))
    rows = torch.from_numpy(z.transpose(3, 0, 1, 2).reshape(net.N, 1, -1))
    likelihood = net.entropy_bottleneck._likelihood(rows)[0]  # pylint: disable=protected-access
    note("likelihoods of z", codec.z_codec.prior.prob(z),
         _numpy(likelihood).reshape(net.N, *z.shape[:3]).transpose(1, 2, 3, 0))
  return found


def main(argv):
  del argv
  import torch  # pylint: disable=import-outside-toplevel
  from compressai.models import MeanScaleHyperprior  # pylint: disable=import-outside-toplevel
  torch.manual_seed(FLAGS.seed)
  net = MeanScaleHyperprior(N=FLAGS.num_filters, M=FLAGS.latent_channels)
  if FLAGS.state_dict:
    net.load_state_dict(torch.load(FLAGS.state_dict), strict=False)
  model = build(net)
  copy(net, model)
  for name, (difference, size) in differences(
      net, model, np.random.default_rng(FLAGS.seed)).items():
    print(f"{name:32s} largest |tflic − CompressAI| {difference:.2e} "
          f"(largest |output| {size:.2e})")


if __name__ == "__main__":
  define_flags()
  app.run(main)
