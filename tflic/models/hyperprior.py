"""The mean-scale hyperprior: Ballé et al. 2018, "Variational image compression
with a scale hyperprior" (Fig. 4), with the Gaussian mean of Minnen, Ballé and
Toderici 2018 ("Joint autoregressive and hierarchical priors", Fig. 4 without the
context model): the `hyperprior` model."""

import tensorflow as tf

from tflic.latent_codecs import GaussianConditional, hyperprior
from tflic.layers import analysis_stage, synthesis_stage
from tflic.models.base import CompressionModel


def transforms(n, m, hyper_channels, hyper_outputs, gsdn=False,
               hyper_padding="same", gdn="simplified", hyper_activation="relu",
               transform_padding="same"):
  """g_a, g_s (Ballé 2018 Fig. 4: 5×5 convolutions with GDN/IGDN of the
  form `gdn`, N filters, M latent channels; GSDN/IGSDN with `gsdn`;
  `transform_padding` "same", TensorFlow's, or "pytorch",
  `layers.centred_conv`) and h_a, h_s (Minnen 2018 Fig. 4: h_s widens by
  3/2; `hyper_transforms`)."""
  if transform_padding not in ("same", "pytorch"):
    raise ValueError(f"unknown transform padding {transform_padding!r}: "
                     "same or pytorch")
  kw = dict(gsdn=gsdn, gdn_form=gdn, padding=dict(
      same="zeros", pytorch="pytorch")[transform_padding])
  analysis = tf.keras.Sequential([
      analysis_stage(n, 5, 2, "analysis_0", **kw),
      analysis_stage(n, 5, 2, "analysis_1", **kw),
      analysis_stage(n, 5, 2, "analysis_2", **kw),
      analysis_stage(m, 5, 2, "analysis_3", gdn=False,
                     padding=kw["padding"]),
  ], name="analysis")
  synthesis = tf.keras.Sequential([
      synthesis_stage(n, 5, 2, "synthesis_0", **kw),
      synthesis_stage(n, 5, 2, "synthesis_1", **kw),
      synthesis_stage(n, 5, 2, "synthesis_2", **kw),
      synthesis_stage(3, 5, 2, "synthesis_3", igdn=False,
                      padding=kw["padding"]),
  ], name="synthesis")
  return (analysis, synthesis) + hyper_transforms(
      m, hyper_channels, hyper_outputs, hyper_padding, hyper_activation)


def leaky_relu(x):
  """PyTorch's `nn.LeakyReLU`: slope 0.01 below 0 (Minnen 2018 Fig. 4 has
  leaky ReLUs in h_a and h_s but gives no slope; this is CompressAI's). As
  max(x, 0.01·x): TensorFlow 2.14's graph optimizer fails to fuse
  `tf.nn.leaky_relu`'s gradient with a convolution's bias (an error
  logged, the optimization skipped)."""
  return tf.maximum(x, .01 * x)


leaky_relu.negative_slope = .01  # for the integer h_s (`layers.integer`)
ACTIVATIONS = dict(relu="relu", leaky_relu=leaky_relu)


def hyper_transforms(m, hyper_channels, hyper_outputs, padding="same",
                     activation="relu"):
  """h_a, h_s of Minnen 2018 Fig. 4 (h_s widens by 3/2 from M).

  `activation` of their hidden layers: "relu" or "leaky_relu" (the
  paper's and CompressAI's, `leaky_relu`).

  `padding` of their 5×5 stride-2 layers (the paper does not say):
  "same", TensorFlow's (a convolution of an even size pads one row before
  and two after); "pytorch", CompressAI's (`padding=2`: two before, of
  which one after is read; transposed: `output_padding=1`), as zeros
  before and a crop after "valid" layers. Each output then sits on
  another phase of its inputs' grid. In paired runs with CompressAI
  (docs/training.md) "pytorch" made y's rate on whole photos lower than on
  the 128² training crops at step 1000, but not from step 2000 on."""
  conv = tf.keras.layers.Conv2D
  deconv = tf.keras.layers.Conv2DTranspose
  if activation not in ACTIVATIONS:
    raise ValueError(f"unknown hyper activation {activation!r}: "
                     f"{' or '.join(ACTIVATIONS)}")
  act = ACTIVATIONS[activation]
  if padding == "same":
    down = lambda filters, name, **kw: [
        conv(filters, 5, 2, padding="same", name=name, **kw)]
    up = lambda filters, name: [
        deconv(filters, 5, 2, padding="same", activation=act, name=name)]
  elif padding == "pytorch":
    down = lambda filters, name, **kw: [
        tf.keras.layers.ZeroPadding2D(2, name=f"{name}_pad"),
        conv(filters, 5, 2, padding="valid", name=name, **kw)]
    up = lambda filters, name: [
        deconv(filters, 5, 2, padding="valid", activation=act, name=name),
        tf.keras.layers.Cropping2D(((2, 1), (2, 1)), name=f"{name}_crop")]
  else:
    raise ValueError(f"unknown hyper padding {padding!r}: same or pytorch")
  hyper_analysis = tf.keras.Sequential([
      conv(hyper_channels, 3, padding="same", activation=act, name="h_a_0"),
      *down(hyper_channels, "h_a_1", activation=act),
      *down(hyper_channels, "h_a_2"),
  ], name="hyper_analysis")
  hyper_synthesis = tf.keras.Sequential([
      *up(m, "h_s_0"),
      *up(m * 3 // 2, "h_s_1"),
      conv(hyper_outputs, 3, padding="same", name="h_s_2"),
  ], name="hyper_synthesis")
  return hyper_analysis, hyper_synthesis


class Hyperprior(CompressionModel):
  """y = g_a(x), z = h_a(y); ẑ coded with a factorized prior; (μ, log σ) =
  h_s(ẑ) parametrize the Gaussian of ŷ (`GaussianConditional`); x̂ = g_s(ŷ).
  Streams: [ẑ, ŷ].

  `scale="sigma"`: h_s gives σ itself (Ballé 2018 Fig. 4), not log σ.
  `quantization="noise"`: in training g_s gets y + u and h_s gets z + u
  (Ballé 2018, §2), not the rounded latents (straight-through). Both as
  CompressAI's `mbt2018-mean`; with them a model trained on 128² crops
  codes whole photos far closer to the rate of its crops than with log σ,
  though not yet as CompressAI's does (docs/training.md).
  `density_layers`: hidden layers of ẑ's factorized densities (2; 4 as
  CompressAI's, which learns faster: docs/training.md). `hyper_padding`:
  "same" or "pytorch" (`hyper_transforms`). `likelihood_bound`: in
  training, each likelihood of ỹ and z̃ bounded below (`noisy_rate`; 0:
  not bounded; CompressAI's 1e-9). `gdn`: GDN's form, "simplified" (α = ε
  = 1, tensorflow-compression 2's) or "original" (α = 2, ε = ½: Ballé 2018,
  CompressAI; `layers.gdn`). `hyper_activation`: "relu" or "leaky_relu"
  in h_a and h_s (`hyper_transforms`). `transform_padding`: "same" or
  "pytorch" in g_a and g_s (`transforms`). All eight as CompressAI's:
  `scale="sigma", quantization="noise", density_layers=4,
  hyper_padding="pytorch", likelihood_bound=1e-9, gdn="original",
  hyper_activation="leaky_relu", transform_padding="pytorch"`: with the
  same weights, the same function as its `mbt2018-mean`
  (bench/compressai_weights.py)."""

  multiple = 64

  def __init__(self, num_filters=192, latent_channels=320, hyper_channels=192,
               scale="log", quantization="round", density_layers=2,
               hyper_padding="same", likelihood_bound=0., gdn="simplified",
               hyper_activation="relu", transform_padding="same", lmbda=0.01,
               distortion="mse", **kwargs):
    super().__init__(lmbda=lmbda, distortion=distortion, **kwargs)
    self.num_filters = num_filters
    self.latent_channels = latent_channels
    self.hyper_channels = hyper_channels
    self.scale = scale
    self.quantization = quantization
    self.density_layers = density_layers
    self.hyper_padding = hyper_padding
    self.likelihood_bound = likelihood_bound
    self.gdn = gdn
    self.hyper_activation = hyper_activation
    self.transform_padding = transform_padding
    self.analysis, self.synthesis, h_a, h_s = transforms(
        num_filters, latent_channels, hyper_channels, 2 * latent_channels,
        hyper_padding=hyper_padding, gdn=gdn,
        hyper_activation=hyper_activation,
        transform_padding=transform_padding)
    self.latent_codec = hyperprior(
        hyper_channels, h_a, h_s, GaussianConditional(
            scale=scale, quantization=quantization,
            likelihood_bound=likelihood_bound), quantization,
        density_layers, likelihood_bound)

  def get_config(self):
    config = dict(super().get_config(), num_filters=self.num_filters,
                  latent_channels=self.latent_channels,
                  hyper_channels=self.hyper_channels)
    # Only when not the default: models of the default form keep the
    # identity (`codec.fingerprint`) their files were written with.
    for name, default in (("scale", "log"), ("quantization", "round"),
                          ("density_layers", 2), ("hyper_padding", "same"),
                          ("likelihood_bound", 0.), ("gdn", "simplified"),
                          ("hyper_activation", "relu"),
                          ("transform_padding", "same")):
      if getattr(self, name) != default:
        config[name] = getattr(self, name)
    return config
